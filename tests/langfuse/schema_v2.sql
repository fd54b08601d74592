-- The part of Langfuse v2's Postgres schema the exporter reads, written from Langfuse's v2
-- definitions (tag v2.95.12, packages/shared/prisma/schema.prisma): the same tables, column
-- names, types and indexes (index names follow Prisma's convention). Views, prices and the
-- other tables are left out: the exporter reads none of them.

CREATE TYPE "ObservationType" AS ENUM ('SPAN', 'EVENT', 'GENERATION');
CREATE TYPE "ObservationLevel" AS ENUM ('DEBUG', 'DEFAULT', 'WARNING', 'ERROR');
CREATE TYPE "ScoreSource" AS ENUM ('ANNOTATION', 'API', 'EVAL');
CREATE TYPE "ScoreDataType" AS ENUM ('CATEGORICAL', 'NUMERIC', 'BOOLEAN');

CREATE TABLE projects (
    id text PRIMARY KEY,
    created_at timestamp(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at timestamp(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    name text NOT NULL,
    org_id text NOT NULL DEFAULT 'org'
);

CREATE TABLE traces (
    id text PRIMARY KEY,
    external_id text,
    "timestamp" timestamp(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    name text,
    user_id text,
    metadata jsonb,
    release text,
    version text,
    project_id text NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    public boolean NOT NULL DEFAULT false,
    bookmarked boolean NOT NULL DEFAULT false,
    tags text[] DEFAULT ARRAY[]::text[],
    input jsonb,
    output jsonb,
    session_id text,
    created_at timestamp(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at timestamp(3) NOT NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE INDEX traces_project_id_timestamp_idx ON traces (project_id, "timestamp");
CREATE INDEX traces_session_id_idx ON traces (session_id);
CREATE INDEX traces_name_idx ON traces (name);
CREATE INDEX traces_user_id_idx ON traces (user_id);
CREATE INDEX traces_timestamp_idx ON traces ("timestamp");
CREATE INDEX traces_created_at_idx ON traces (created_at);
CREATE INDEX traces_tags_idx ON traces USING gin (tags);

CREATE TABLE observations (
    id text PRIMARY KEY,
    name text,
    start_time timestamp(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    end_time timestamp(3),
    parent_observation_id text,
    type "ObservationType" NOT NULL,
    trace_id text,
    metadata jsonb,
    model text,
    "modelParameters" jsonb,
    input jsonb,
    output jsonb,
    level "ObservationLevel" NOT NULL DEFAULT 'DEFAULT',
    status_message text,
    completion_start_time timestamp(3),
    completion_tokens integer NOT NULL DEFAULT 0,
    prompt_tokens integer NOT NULL DEFAULT 0,
    total_tokens integer NOT NULL DEFAULT 0,
    version text,
    project_id text NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    created_at timestamp(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    unit text,
    prompt_id text,
    input_cost numeric(65, 30),
    output_cost numeric(65, 30),
    total_cost numeric(65, 30),
    internal_model text,
    updated_at timestamp(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    calculated_input_cost numeric(65, 30),
    calculated_output_cost numeric(65, 30),
    calculated_total_cost numeric(65, 30),
    internal_model_id text
);
CREATE INDEX observations_project_id_start_time_type_idx ON observations (project_id, start_time, type);
CREATE INDEX observations_project_id_internal_model_start_time_unit_idx
    ON observations (project_id, internal_model, start_time, unit);
CREATE INDEX observations_model_idx ON observations (model);
CREATE INDEX observations_start_time_idx ON observations (start_time);
CREATE INDEX observations_trace_id_project_id_type_start_time_idx ON observations (trace_id, project_id, type, start_time);
CREATE INDEX observations_created_at_idx ON observations (created_at);

CREATE TABLE scores (
    id text PRIMARY KEY,
    "timestamp" timestamp(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    name text NOT NULL,
    value double precision,
    source "ScoreSource" NOT NULL DEFAULT 'API',
    comment text,
    trace_id text NOT NULL,
    observation_id text,
    project_id text NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    string_value text,
    data_type "ScoreDataType" NOT NULL DEFAULT 'NUMERIC',
    config_id text,
    author_user_id text,
    queue_id text,
    created_at timestamp(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at timestamp(3) NOT NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE INDEX scores_project_id_name_idx ON scores (project_id, name);
CREATE INDEX scores_timestamp_idx ON scores ("timestamp");
CREATE INDEX scores_trace_id_idx ON scores (trace_id);
CREATE INDEX scores_value_idx ON scores (value);
