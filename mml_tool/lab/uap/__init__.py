"""A UAP9600 MML simulator: many nodes in one process, over SSH and plain TCP.

Each node (``NodeConfig``) has its own SSH port, its own plain-TCP MML port and its own state
(``SfpStore``). One ``UapServer`` serves them all with threads: one selector thread accepts on
every listening socket, then one thread per connection (plus paramiko's own thread per SSH
connection).

Wire protocol (reference/mml-protocol.md): the client sends ``VERB OBJECT: NAME=value, ...;``
followed by ``\\r\\n`` (a bare LF or CR is accepted too); partial lines are buffered and one
packet may carry several commands. A line that ends without ``;`` is answered with RETCODE 1002.
Every reply is a report rendered by ``mml_tool.lab.frames`` (CRLF line endings, UTF-8, or
GB18030 on a node with ``encoding="gb18030"``, as Chinese-language elements send; commands are
read in the node's encoding too). The
``O&M`` serial starts at ``NodeConfig.serial_start`` (random in 1000..60000 when None) on each
connection and increases by one per reply; the pages of one paged reply share the serial
(inference: the reference says the serial counts responses).

The echo line is ``%%<command>%%`` (the command as received, line breaks turned into spaces),
or ``%%<prefix><command>%%`` when the node sets ``NodeConfig.echo_prefix``: the reference shows
real elements echoing ``%%241299DSP BTSETHPORT: ...;%%`` and
``%%/*1879106888 MEID=005*/LST RT:...;%%``. The prefix is literal text, except that the token
``{serial}`` is replaced by a running number of the connection: it starts at a random number in
100000..999999 on each connection and increases by one per command received (the pages of one
paged reply share it). So ``echo_prefix="{serial}"`` gives ``%%241299LST SFP: ID=P978;%%`` and
``echo_prefix="/*1879106888 MEID=005*/"`` gives ``%%/*1879106888 MEID=005*/LST SFP: ...;%%``.
A prefix holds no line break, no ``%%`` and no ``{...}`` token other than ``{serial}``.

Text outside reports: on plain TCP, none. On SSH, none either, unless the node sets
``ssh_echo=True``: then the shell echoes the typed characters like a terminal (CR/LF as
``\\r\\n``, backspace as ``\\b \\b``), so a client must skip the echoed command line before the
``+++`` line. No banner, no prompt is ever printed; an empty line gets no answer. (So an
interactive OpenSSH user types blind on a node without ``ssh_echo``; the reply's ``%%echo%%``
shows what was received. netmiko's ``generic`` driver works with ``expect_string=r"---\\s+END"``
and its check that the command is echoed back switched off, or with that check on (its
default) on an ``ssh_echo`` node; host keys and TLS are not concerned.)
Server-side SSH transports log to ``mml_tool.lab.uap.ssh`` (level CRITICAL by default).

Commands (verb and object case-insensitive; names and enumeration values too):

    LGI:OP="user",PWD="pw"[,DN=x];   required first; the same user/password as SSH
    LGO[:OP="user"];                 RETCODE 0 (even before LGI), then the connection closes
    REG NE:NAME="x";                 x must be the node's NE name
    UNREG NE[:NAME="x"];             always succeeds
    USE ME:MEID=n;                   n must be the node's meid
    LST SFP:[ID=Pnnn][,BIT=n];       layouts below; no ID lists every parameter, paged
    MOD SFP:ID=Pnnn,MODTYPE=P1,BIT=n,BITVAL=0|1;   sets one bit, persists the state file
    LST OFI:[ONO=n];                 office directions (layout below), all or number n

RETCODE numbers and texts (English; Chinese nodes print the ``RETCODES_ZH`` texts):

    0     Operation succeeded                      (zh: 操作成功)
    1     Please log in first
    1001  Command not supported: <VERB OBJECT>
    1002  Invalid command format: <why>
    1003  Missing mandatory parameter: <NAME>
    1004  Invalid value of parameter <NAME>: <why>
    1005  Parameter <NAME> is not supported by this command
    1006  Software parameter <ID> does not exist    (LST with unknown_param="error", and MOD)
    1007  Incorrect user name or password
    1008  The user is locked. Contact the administrator   (fault login_refused)
    1009  NE <x> does not exist

``LST SFP`` layouts (``NodeConfig.layout``; labels in English or Chinese per
``NodeConfig.language``; block title ``Software parameter`` / ``软件参数``):

- ``table``: one block, columns ``Parameter ID  Bit  Bit value`` (``软参编号  比特位  比特位值``),
  one row per bit: all 16 bits of each parameter, or only the bit ``BIT=n`` names.
- ``vertical``: one block per bit, records ``Parameter ID`` / ``Bit`` / ``Bit value``; all 16
  bits, or only the one ``BIT=n`` names.
- ``value``: one block per parameter, records ``Parameter ID`` / ``Parameter value`` (decimal;
  ``参数值``), plus ``Hexadecimal value  =  0x0001`` (``十六进制值``) when ``hex_line`` is set.
  ``BIT`` is accepted and ignored.

A parameter is 16 bits wide (inference: the width is not public; MSOFTX3000 documents
``BIT=13``). ``LST SFP:;`` pages ``page_size`` parameters per report (default 20): every page
but the last prints ``To be continued...`` (``NodeConfig.paging="en"``). With ``paging="zh"``
pages end as on Chinese-language elements: ``仍有后续报告输出`` on every page but the last,
``共有N个报告`` on the last, and a single count line, the total, on the last page (see
``frames``); ``paging="zh-bare"`` also drops header, echo and RETCODE from later pages, as in
the UNC manual's DSP OFFLOAD example. An unknown ``ID`` answers RETCODE 1006 or, with
``unknown_param="empty"``, RETCODE 0 and ``No matching result is found``.

``LST OFI`` (office directions; ``NodeConfig.offices``, ``OfficeConfig``): the simulator's own
choice, not a documented UAP9600 reply (none is public). It lists the routes ("office
directions") the element has towards its peers, as MSOFTX-family switches do, in the frame and
table layout of reference/mml-protocol.md whatever ``NodeConfig.layout`` says; not paged. One
block titled ``Office direction`` (``局向``), one row per direction ordered by number, columns::

    Office direction number  Office direction name  Peer type  Maximum calls  Status
    局向号                   局向名                 对端类型   最大呼叫数     状态

number 0..65535; name 1..32 of ``A-Z a-z 0-9 _ . -`` (no spaces, so the columns split on runs
of two spaces); peer type ``CCGW`` | ``SOFTX`` | ``SIP`` | ``PSTN``; maximum calls 0..65535;
status ``Normal`` | ``Blocked`` | ``Faulty`` (``正常`` | ``闭塞`` | ``故障``). ``ONO=n`` lists
direction n only; none (or no direction at all) answers RETCODE 0 and ``No matching result is
found``. The default set (``default_offices``) has four directions, one of them blocked.

Faults (``FaultConfig``, per node). A *prefix* selects the commands a fault hits: the command's
``VERB OBJECT`` starts with it (``"LST SFP"``, ``"MOD"``), ``"*"`` = every command but LGI and
LGO. The command itself is always executed; only its reply is damaged. ``times`` bounds how many
times the prefix faults and ``drop_after_mod`` fire on the node (None: every time).

    latency            seconds to wait before every reply
    drop_after         close the connection after answering N commands (LGI counts)
    drop_mid_response  prefix: send the first half of the reply's bytes, then close
    garbage_reply      prefix: send non-frame text, then a ``---    END`` line
    never_end          prefix: send the reply without its ``---    END`` line, then nothing more
                       (further input is read and ignored; the connection stays open)
    alarms             before every reply, an autonomous ALARM report (frames.render_alarm)
    login_refused      LGI always answers RETCODE 1008
    drop_after_mod     a successful MOD changes the state, then the connection closes unanswered

SSH: password authentication; and public-key authentication for a node that lists OpenSSH
public keys in ``NodeConfig.authorized_keys`` (``ssh-ed25519 AAAA... comment``), for the lab's
user only. A shell opened after public-key authentication is logged in to MML as that user,
so ``LGI`` is not needed there (inference: as the client does for a key without an MML
password; whether a real element also asks for ``LGI`` then is not public). ``session``
channels with pty and shell requests; ``exec`` refused; ``direct-tcpip`` accepted only towards
this server's own plain-TCP MML ports on its own address, 127.0.0.1 or localhost (a jump host
for the ssh-tunnel transport), the bytes are relayed to that port. The host key is Ed25519,
generated at start unless ``host_key_file`` names an existing key (a missing file is created
with the generated key).
"""

from __future__ import annotations

from mml_tool.lab.uap.commands import CommandSplitter, parse_device_command
from mml_tool.lab.uap.config import (
    ENCODINGS,
    LANGUAGES,
    LAYOUTS,
    PAGINGS,
    PARAM_BITS,
    RETCODES_EN,
    RETCODES_ZH,
    SSH_LOG_NAME,
    FaultConfig,
    NodeConfig,
    OfficeConfig,
    default_offices,
    default_params,
)
from mml_tool.lab.uap.server import UapServer
from mml_tool.lab.uap.session import MmlConnection
from mml_tool.lab.uap.ssh import generate_host_key, load_or_create_host_key
from mml_tool.lab.uap.state import SfpStore, UapNode

__all__ = [
    "ENCODINGS",
    "LANGUAGES",
    "LAYOUTS",
    "PAGINGS",
    "PARAM_BITS",
    "RETCODES_EN",
    "RETCODES_ZH",
    "SSH_LOG_NAME",
    "CommandSplitter",
    "FaultConfig",
    "MmlConnection",
    "NodeConfig",
    "OfficeConfig",
    "SfpStore",
    "UapNode",
    "UapServer",
    "default_offices",
    "default_params",
    "generate_host_key",
    "load_or_create_host_key",
    "parse_device_command",
]
