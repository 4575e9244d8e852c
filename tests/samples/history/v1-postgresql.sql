-- A history store of schema version 1, made by mml-tool's version-1 code (HistoryStore.open
-- and .record on PostgreSQL, then pg_dump --inserts --no-owner --no-privileges; psql's
-- meta-commands and comments removed): tests/test_history_postgres.py upgrades it.

SET statement_timeout = 0;
SET lock_timeout = 0;
SET idle_in_transaction_session_timeout = 0;
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
SELECT pg_catalog.set_config('search_path', '', false);
SET check_function_bodies = false;
SET xmloption = content;
SET client_min_messages = warning;
SET row_security = off;

SET default_tablespace = '';

SET default_table_access_method = heap;

CREATE TABLE public.changes (
    id integer NOT NULL,
    run_id integer NOT NULL,
    host character varying(255) NOT NULL,
    control character varying(255) NOT NULL,
    action character varying(16) NOT NULL,
    status character varying(32) NOT NULL,
    before integer,
    after integer,
    error text
);

CREATE SEQUENCE public.changes_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

ALTER SEQUENCE public.changes_id_seq OWNED BY public.changes.id;

CREATE TABLE public.findings (
    id integer NOT NULL,
    run_id integer NOT NULL,
    host character varying(255) NOT NULL,
    control character varying(255) NOT NULL,
    status character varying(16) NOT NULL,
    actual character varying(255),
    error text
);

CREATE SEQUENCE public.findings_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

ALTER SEQUENCE public.findings_id_seq OWNED BY public.findings.id;

CREATE TABLE public.mml_tool_meta (
    key character varying(64) NOT NULL,
    value character varying(255) NOT NULL
);

CREATE TABLE public.runs (
    id integer NOT NULL,
    command character varying(16) NOT NULL,
    started timestamp with time zone NOT NULL,
    finished timestamp with time zone NOT NULL,
    inventory character varying(1024) NOT NULL,
    policy_name character varying(255) NOT NULL,
    policy_sha256 character varying(64) NOT NULL,
    change_id character varying(128),
    operator character varying(255) NOT NULL,
    machine character varying(255) NOT NULL,
    tool_version character varying(32) NOT NULL,
    exit_code integer NOT NULL,
    hosts integer NOT NULL,
    passed integer NOT NULL,
    failed integer NOT NULL,
    errors integer NOT NULL,
    waived integer NOT NULL
);

CREATE SEQUENCE public.runs_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

ALTER SEQUENCE public.runs_id_seq OWNED BY public.runs.id;

CREATE TABLE public.verifications (
    id integer NOT NULL,
    run_id integer NOT NULL,
    gateway character varying(255) NOT NULL,
    direction integer,
    ok boolean NOT NULL,
    reason text NOT NULL
);

CREATE SEQUENCE public.verifications_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

ALTER SEQUENCE public.verifications_id_seq OWNED BY public.verifications.id;

ALTER TABLE ONLY public.changes ALTER COLUMN id SET DEFAULT nextval('public.changes_id_seq'::regclass);

ALTER TABLE ONLY public.findings ALTER COLUMN id SET DEFAULT nextval('public.findings_id_seq'::regclass);

ALTER TABLE ONLY public.runs ALTER COLUMN id SET DEFAULT nextval('public.runs_id_seq'::regclass);

ALTER TABLE ONLY public.verifications ALTER COLUMN id SET DEFAULT nextval('public.verifications_id_seq'::regclass);

INSERT INTO public.changes VALUES (1, 2, 'uap-1', 'UAP-SFP-P978-B0', 'apply', 'changed', 1, 0, NULL);

INSERT INTO public.findings VALUES (1, 1, 'uap-1', 'UAP-SFP-P978-B0', 'fail', '1', NULL);
INSERT INTO public.findings VALUES (2, 1, 'uap-2', 'UAP-SFP-P978-B0', 'pass', '0', NULL);
INSERT INTO public.findings VALUES (3, 3, 'uap-1', 'UAP-SFP-P978-B0', 'pass', '0', NULL);
INSERT INTO public.findings VALUES (4, 3, 'uap-2', 'UAP-SFP-P978-B0', 'fail', '1', NULL);

INSERT INTO public.mml_tool_meta VALUES ('schema_version', '1');

INSERT INTO public.runs VALUES (1, 'check', '2026-11-01 08:00:00+00', '2026-11-01 08:00:00+00', '/srv/old-checkout/inventory.yaml', 'uap-sfp', 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa', NULL, 'op-old', 'vm', '0.9', 100, 2, 1, 1, 0, 0);
INSERT INTO public.runs VALUES (2, 'apply', '2026-11-01 09:00:00+00', '2026-11-01 09:00:00+00', '/srv/old-checkout/inventory.yaml', 'uap-sfp', 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa', 'CHG-1', 'op-old', 'vm', '0.9', 0, 1, 0, 0, 0, 0);
INSERT INTO public.runs VALUES (3, 'check', '2026-11-02 08:00:00+00', '2026-11-02 08:00:00+00', '/srv/old-checkout/inventory.yaml', 'uap-sfp', 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa', NULL, 'op-old', 'vm', '0.9', 100, 2, 1, 1, 0, 0);

SELECT pg_catalog.setval('public.changes_id_seq', 1, true);

SELECT pg_catalog.setval('public.findings_id_seq', 4, true);

SELECT pg_catalog.setval('public.runs_id_seq', 3, true);

SELECT pg_catalog.setval('public.verifications_id_seq', 1, false);

ALTER TABLE ONLY public.changes
    ADD CONSTRAINT changes_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.findings
    ADD CONSTRAINT findings_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.mml_tool_meta
    ADD CONSTRAINT mml_tool_meta_pkey PRIMARY KEY (key);

ALTER TABLE ONLY public.runs
    ADD CONSTRAINT runs_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.verifications
    ADD CONSTRAINT verifications_pkey PRIMARY KEY (id);

CREATE INDEX ix_changes_run ON public.changes USING btree (run_id);

CREATE INDEX ix_findings_host_control ON public.findings USING btree (host, control);

CREATE INDEX ix_findings_run ON public.findings USING btree (run_id);

CREATE INDEX ix_runs_scope ON public.runs USING btree (inventory, policy_sha256, started);

CREATE INDEX ix_runs_started ON public.runs USING btree (started);

CREATE INDEX ix_verifications_run ON public.verifications USING btree (run_id);

ALTER TABLE ONLY public.changes
    ADD CONSTRAINT changes_run_id_fkey FOREIGN KEY (run_id) REFERENCES public.runs(id);

ALTER TABLE ONLY public.findings
    ADD CONSTRAINT findings_run_id_fkey FOREIGN KEY (run_id) REFERENCES public.runs(id);

ALTER TABLE ONLY public.verifications
    ADD CONSTRAINT verifications_run_id_fkey FOREIGN KEY (run_id) REFERENCES public.runs(id);
