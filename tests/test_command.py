"""MmlCommand: validation (nothing smuggled), parse/render, masking."""

from __future__ import annotations

import re

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from mml_tool.errors import CommandError
from mml_tool.mml.command import MmlCommand, Quoted, mask_text, quoted


def test_create_and_render() -> None:
    cmd = MmlCommand.create("MOD", "SFP", ID="P978", MODTYPE="P1", BIT=0, BITVAL=0)
    assert cmd.render() == "MOD SFP: ID=P978, MODTYPE=P1, BIT=0, BITVAL=0;"
    assert MmlCommand.create("LST", "SFP", ID="P978").render() == "LST SFP: ID=P978;"
    assert MmlCommand("LST", "ERRORCODE").render() == "LST ERRORCODE:;"
    assert MmlCommand("LGO").render() == "LGO:;"
    lgi = MmlCommand.create("LGI", OP=quoted("admin"), PWD=quoted("x"))
    assert lgi.render() == 'LGI: OP="admin", PWD="x";'
    assert MmlCommand.create("SET", "X", N=-1, E=quoted("")).render() == 'SET X: N=-1, E="";'


def test_accessors() -> None:
    cmd = MmlCommand.create("MOD", "SFP", ID="P978", BIT=0)
    assert cmd.param("ID") == "P978"
    assert cmd.param("bit") == 0
    assert cmd.param("BITVAL") is None
    assert not cmd.is_read_only
    for verb in ("LST", "DSP", "LGI", "LGO", "REG", "UNREG", "USE"):
        assert MmlCommand(verb).is_read_only
    for verb in ("MOD", "ADD", "RMV", "SET"):
        assert not MmlCommand(verb).is_read_only


def test_canonical_int_bare_words_become_int() -> None:
    assert MmlCommand.create("MOD", "SFP", BIT="0") == MmlCommand.create("MOD", "SFP", BIT=0)
    assert MmlCommand.create("X", A="007").param("A") == "007"
    assert MmlCommand.create("X", A="-1").param("A") == -1


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("LST SFP: ID=P978;", MmlCommand.create("LST", "SFP", ID="P978")),
        ('LST RT:RN="X",SSR=YES;', MmlCommand.create("LST", "RT", RN=quoted("X"), SSR="YES")),
        ('LGI:OP="u",PWD="p";', MmlCommand.create("LGI", OP=quoted("u"), PWD=quoted("p"))),
        ("LST ERRORCODE:;", MmlCommand("LST", "ERRORCODE")),
        ("LGO: ;", MmlCommand("LGO")),
        (
            "MOD SFP: ID=P978, MODTYPE=P1, BIT=0, BITVAL=0;\r\n",
            MmlCommand.create("MOD", "SFP", ID="P978", MODTYPE="P1", BIT=0, BITVAL=0),
        ),
        (
            'LST RT:RN="QOA_RT_TATA ",SSR=YES,QR=LOCAL;',
            MmlCommand.create("LST", "RT", RN=quoted("QOA_RT_TATA "), SSR="YES", QR="LOCAL"),
        ),
        ('ADD X: D="a:b, c=d 中文";', MmlCommand.create("ADD", "X", D=quoted("a:b, c=d 中文"))),
        ("SET X: A=007, B=1.5;", MmlCommand.create("SET", "X", A="007", B="1.5")),
    ],
)
def test_parse(text: str, expected: MmlCommand) -> None:
    assert MmlCommand.parse(text) == expected


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("LST SFP: ID=P978;MOD SFP: ID=P978, MODTYPE=P1, BIT=0, BITVAL=1;", "';'"),
        ("lst sfp: id=P978;", "use 'LST'"),
        ("LST SFP: ID=P978", "end with ';'"),
        ("LST SFP;", "needs ':'"),
        ("LST SFP: ID=P978\nMOD SFP: ID=P978;", "printable"),
        ("LST SFP: ID=P978,;", "NAME=value"),
        ("LST SFP: ID=;", "bare value"),
        ('LST SFP: ID="P978;', "not closed"),
        ('LST SFP: ID="a"b";', "','"),
        ("LST SFP: ID=P978, ID=P979;", "twice"),
        ("LST SFP: ID=%%P978;", "bare value"),
        ("LST SFP EXTRA: ID=1;", "VERB OBJECT"),
        ("LST SFP: ID=P\x00978;", "printable"),
        ("LST SFP: ID=P\u2028978;", "printable"),
        (": ID=1;", "VERB OBJECT"),
    ],
)
def test_parse_refuses(text: str, needle: str) -> None:
    with pytest.raises(CommandError, match=None) as info:
        MmlCommand.parse(text)
    assert needle in str(info.value)


INJECTIONS = [
    "P978;MOD SFP",
    "P978; MOD SFP: ID=P978, BIT=0, BITVAL=1",
    "P978\r\nMOD SFP",
    "P978\n",
    'P978"',
    "%%P978%%",
    "P978\x00",
    "P978\u2028",
    "P978\u0085",
    "P978:X",
    "P978,BIT=1",
    "P978\\",
    "P 978",
    "",
]


@pytest.mark.parametrize("value", INJECTIONS)
def test_bare_injection_refused(value: str) -> None:
    with pytest.raises(CommandError, match="parameter ID: bare value"):
        MmlCommand.create("LST", "SFP", ID=value)


@pytest.mark.parametrize("value", [v for v in INJECTIONS if v and v != "P 978"])
def test_quoted_injection_refused(value: str) -> None:
    bad_for_quotes = any(c in value for c in '";%\\') or not value.isprintable()
    if bad_for_quotes:
        with pytest.raises(CommandError, match="parameter RN: quoted value"):
            MmlCommand.create("LST", "RT", RN=quoted(value))
    else:  # ':' and ',' are harmless between quotes
        assert MmlCommand.parse(MmlCommand.create("LST", "RT", RN=quoted(value)).render())


@pytest.mark.parametrize(
    ("verb", "obj", "params", "needle"),
    [
        ("lst", "SFP", (), "verb 'lst' must be upper case: use 'LST'"),
        ("LST", "sfp", (), "object 'sfp' must be upper case"),
        ("LST;MOD", "SFP", (), "verb"),
        ("", "SFP", (), "verb"),
        ("LST", "SFP\n", (), "object"),
        ("LST", "SFP", (("id", "P978"),), "parameter name 'id' must be upper case"),
        ("LST", "SFP", (("", "P978"),), "parameter name"),
        ("LST", "SFP", (("I D", "P978"),), "parameter name"),
        ("LST", "SFP", (("ID", True),), "type bool"),
        ("LST", "SFP", (("ID", 1.5),), "type float"),
        ("LST", "SFP", (("ID", None),), "type NoneType"),
        ("LST", "SFP", (("ID", "P1"), ("ID", "P2")), "twice"),
        ("LST", "SFP", (("ID",),), "pair"),
    ],
)
def test_validation_names_the_part(
    verb: str, obj: str, params: tuple[tuple[str, object], ...], needle: str
) -> None:
    with pytest.raises(CommandError) as info:
        MmlCommand(verb, obj, params)  # type: ignore[arg-type]
    assert needle in str(info.value)


def test_errors_never_show_a_password() -> None:
    with pytest.raises(CommandError) as info:
        MmlCommand.create("LGI", OP=quoted("u"), PWD=quoted('s3cret";x'))
    assert "s3cret" not in str(info.value)
    with pytest.raises(CommandError) as info:
        MmlCommand.parse('LGI: OP="u", PWD="s3cret";LGO:;')
    assert "s3cret" not in str(info.value)
    with pytest.raises(CommandError, match="command head") as info:
        MmlCommand.parse('LGI PWD="s3cret": OP="u";')  # parameters typed before the colon
    assert "s3cret" not in str(info.value)
    with pytest.raises(CommandError, match="backslash") as info:
        MmlCommand.create("LGI", OP=quoted("u"), PWD=quoted("s3cret\\"))
    assert "s3cret" not in str(info.value)


def test_masked() -> None:
    cmd = MmlCommand.create(
        "LGI", OP=quoted("admin"), PWD=quoted("s3cret"), NEWPWD="abc", PASSWORD=quoted("p")
    )
    assert cmd.masked() == 'LGI: OP="admin", PWD="*****", NEWPWD=*****, PASSWORD="*****";'
    assert "s3cret" not in repr(cmd)
    assert "s3cret" not in str(cmd)
    assert "s3cret" in cmd.render()
    assert MmlCommand.create("LST", "SFP", ID="P978").masked() == "LST SFP: ID=P978;"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('%%LGI:OP="u",PWD="p";%%', '%%LGI:OP="u",PWD="*****";%%'),
        ("lgi:op=u,pwd=secret;", "lgi:op=u,pwd=*****;"),
        ('NEWPWD = "a b", OldPwd=x', 'NEWPWD = "*****", OldPwd=*****'),
        ("PASSWORD=hunter2\nPASSWD=x", "PASSWORD=*****\nPASSWD=*****"),
        ('CONFIRMPWD="unterminated', 'CONFIRMPWD="*****"'),
        ('LGI: PWD="a;b%c";', 'LGI: PWD="*****";'),
        ("LST SFP: ID=P978;", "LST SFP: ID=P978;"),
    ],
)
def test_mask_text(text: str, expected: str) -> None:
    assert mask_text(text) == expected


NAMES = st.from_regex(r"[A-Z][A-Z0-9_]{0,8}", fullmatch=True)
VALUES = st.one_of(
    st.integers(min_value=-(10**12), max_value=10**12),
    st.from_regex(r"[A-Za-z0-9_.+-]{1,12}", fullmatch=True),
    st.builds(
        Quoted,
        st.text(
            st.characters(
                blacklist_characters='";%\\', blacklist_categories=("Cc", "Cf", "Cs", "Co", "Cn")
            ),
            max_size=20,
        ).filter(str.isprintable),
    ),
)


@given(
    verb=NAMES,
    obj=st.one_of(st.just(""), NAMES),
    params=st.dictionaries(NAMES, VALUES, max_size=5),
)
def test_parse_render_round_trip(verb: str, obj: str, params: dict[str, object]) -> None:
    cmd = MmlCommand(verb, obj, tuple(params.items()))  # type: ignore[arg-type]
    assert MmlCommand.parse(cmd.render()) == cmd
    # The spaces after ':' and ',' are optional; inside quotes they are the value's own.
    parts = cmd.render().split('"')
    tight = '"'.join(
        p if i % 2 else p.replace(", ", ",").replace(": ", ":") for i, p in enumerate(parts)
    )
    assert MmlCommand.parse(tight) == cmd


@given(st.text(max_size=60))
def test_parse_arbitrary_text_raises_only_command_error(text: str) -> None:
    try:
        cmd = MmlCommand.parse(text)
    except CommandError:
        return
    rendered = cmd.render()
    assert rendered.count(";") == 1 and rendered.endswith(";")
    assert "\n" not in rendered and "%%" not in rendered


@given(
    st.text(
        alphabet=st.sampled_from(list("PpAaSsWwDdOoRrNE=_ \"',;%xyz12\u017f\u212a\u0131")),
        max_size=40,
    )
)
@example("PA\u017f\u017fWORD=secret1")  # the long s folds to s
@example('NEWPWD = "a b", pswd=x')
def test_mask_text_masks_whatever_the_full_pattern_would(text: str) -> None:
    """mask_text's cheap first test (no password-like name: nothing to do) lets no value
    through that the full pattern masks, whatever the case folding (long s, Kelvin sign)."""
    from mml_tool.mml.command import _MASK_RE

    def masked(m: re.Match[str]) -> str:
        return m.group(1) + m.group(2) + ('"*****"' if m.group(3).startswith('"') else "*****")

    assert mask_text(text) == _MASK_RE.sub(masked, text)
