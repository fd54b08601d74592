-- The part of Langfuse v2's Postgres schema the exporter reads, written from Langfuse's v2.95
-- definitions (its Prisma schema and the migrations up to v2.95.12): the same tables, column
-- names, types and indexes (index names as Prisma makes them), the price table and the
-- observations view whose cost columns price rows that carry no cost of their own. Columns and
-- tables the exporter never reads (input/output bodies aside) are left out.

CREATE TYPE "ObservationType" AS ENUM ('SPAN', 'EVENT', 'GENERATION');
CREATE TYPE "ObservationLevel" AS ENUM ('DEBUG', 'DEFAULT', 'WARNING', 'ERROR');
CREATE TYPE "ScoreSource" AS ENUM ('ANNOTATION', 'API', 'EVAL');
CREATE TYPE "ScoreDataType" AS ENUM ('CATEGORICAL', 'NUMERIC', 'BOOLEAN');

CREATE TABLE projects (
    id text PRIMARY KEY,
    created_at timestamp(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    name text NOT NULL,
    updated_at timestamp(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    org_id text NOT NULL DEFAULT 'org'
);
CREATE INDEX projects_org_id_idx ON projects (org_id);

CREATE TABLE traces (
    id text PRIMARY KEY,
    "timestamp" timestamp(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    name text,
    project_id text NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    metadata jsonb,
    external_id text,
    user_id text,
    release text,
    version text,
    public boolean NOT NULL DEFAULT false,
    bookmarked boolean NOT NULL DEFAULT false,
    input jsonb,
    output jsonb,
    session_id text,
    tags text[] DEFAULT ARRAY[]::text[],
    created_at timestamp(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at timestamp(3) NOT NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE INDEX traces_created_at_idx ON traces (created_at);
CREATE INDEX traces_id_user_id_idx ON traces (id, user_id);
CREATE INDEX traces_name_idx ON traces (name);
CREATE INDEX traces_project_id_timestamp_idx ON traces (project_id, "timestamp");
CREATE INDEX traces_session_id_idx ON traces (session_id);
CREATE INDEX traces_tags_idx ON traces USING gin (tags);
CREATE INDEX traces_timestamp_idx ON traces ("timestamp");
CREATE INDEX traces_user_id_idx ON traces (user_id);

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
    unit text,  -- TOKENS, CHARACTERS, MILLISECONDS, SECONDS, IMAGES, REQUESTS; none when usage came without one
    prompt_id text,
    input_cost numeric(65, 30),  -- the user's costs
    output_cost numeric(65, 30),
    total_cost numeric(65, 30),
    internal_model text,  -- the price-table model matched at ingestion
    updated_at timestamp(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    calculated_input_cost numeric(65, 30),  -- set at ingestion (the user's cost when given); none on older rows
    calculated_output_cost numeric(65, 30),
    calculated_total_cost numeric(65, 30),
    internal_model_id text
);
CREATE UNIQUE INDEX observations_id_project_id_key ON observations (id, project_id);
CREATE INDEX observations_created_at_idx ON observations (created_at);
CREATE INDEX observations_internal_model_idx ON observations (internal_model);
CREATE INDEX observations_model_idx ON observations (model);
CREATE INDEX observations_project_id_internal_model_start_time_unit_idx
    ON observations (project_id, internal_model, start_time, unit);
CREATE INDEX observations_project_id_prompt_id_idx ON observations (project_id, prompt_id);
CREATE INDEX observations_project_id_start_time_type_idx ON observations (project_id, start_time, type);
CREATE INDEX observations_prompt_id_idx ON observations (prompt_id);
CREATE INDEX observations_start_time_idx ON observations (start_time);
CREATE INDEX observations_trace_id_project_id_start_time_idx ON observations (trace_id, project_id, start_time);
CREATE INDEX observations_trace_id_project_id_type_start_time_idx
    ON observations (trace_id, project_id, type, start_time);
CREATE INDEX observations_type_idx ON observations (type);

CREATE TABLE scores (
    id text PRIMARY KEY,
    "timestamp" timestamp(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    name text NOT NULL,
    value double precision,  -- set for NUMERIC and BOOLEAN; may be set for CATEGORICAL too
    observation_id text,
    trace_id text NOT NULL,
    comment text,
    source "ScoreSource" NOT NULL,
    project_id text NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    author_user_id text,
    config_id text,
    data_type "ScoreDataType" NOT NULL DEFAULT 'NUMERIC',
    string_value text,
    created_at timestamp(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at timestamp(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    queue_id text
);
CREATE UNIQUE INDEX scores_id_project_id_key ON scores (id, project_id);
CREATE INDEX scores_author_user_id_idx ON scores (author_user_id);
CREATE INDEX scores_config_id_idx ON scores (config_id);
CREATE INDEX scores_created_at_idx ON scores (created_at);
CREATE INDEX scores_observation_id_idx ON scores USING hash (observation_id);
CREATE INDEX scores_project_id_name_idx ON scores (project_id, name);
CREATE INDEX scores_source_idx ON scores (source);
CREATE INDEX scores_timestamp_idx ON scores ("timestamp");
CREATE INDEX scores_trace_id_idx ON scores USING hash (trace_id);
CREATE INDEX scores_value_idx ON scores (value);

-- Prices per model: project_id none = one of Langfuse's own rows, else the project's override.
CREATE TABLE models (
    id text PRIMARY KEY,
    created_at timestamp(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at timestamp(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    project_id text REFERENCES projects(id) ON DELETE CASCADE,
    model_name text NOT NULL,
    match_pattern text NOT NULL,
    start_date timestamp(3),
    input_price numeric(65, 30),
    output_price numeric(65, 30),
    total_price numeric(65, 30),
    unit text,
    tokenizer_config jsonb,
    tokenizer_id text
);
CREATE INDEX models_model_name_idx ON models (model_name);
CREATE UNIQUE INDEX models_project_id_model_name_start_date_unit_key ON models (project_id, model_name, start_date, unit);

CREATE TABLE prompts (
    id text PRIMARY KEY,
    created_at timestamp(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at timestamp(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    project_id text NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    created_by text NOT NULL,
    name text NOT NULL,
    version integer NOT NULL,
    prompt jsonb NOT NULL,
    type text NOT NULL DEFAULT 'text'
);
CREATE UNIQUE INDEX prompts_project_id_name_version_key ON prompts (project_id, name, version);
CREATE INDEX prompts_project_id_id_idx ON prompts (project_id, id);

-- What Langfuse's own pages and its daily-metrics API read: each observation with the price row
-- that applied to it (the project's own before Langfuse's, the latest start date before the
-- observation, the same unit) and calculated costs that fall back, when a row has no cost at all
-- (ingested before Langfuse computed costs), to its usage times that price.
CREATE VIEW observations_view AS
SELECT o.id, o.name, o.start_time, o.end_time, o.parent_observation_id, o.type, o.trace_id, o.metadata, o.model,
       o."modelParameters", o.input, o.output, o.level, o.status_message, o.completion_start_time,
       o.completion_tokens, o.prompt_tokens, o.total_tokens, o.version, o.project_id, o.created_at, o.updated_at,
       o.unit, o.prompt_id, prompt.name AS prompt_name, prompt.version AS prompt_version,
       o.input_cost, o.output_cost, o.total_cost, o.internal_model,
       price.id AS model_id, price.start_date AS model_start_date, price.input_price, price.output_price,
       price.total_price, price.tokenizer_config,
       CASE WHEN o.calculated_input_cost IS NULL AND o.input_cost IS NULL AND o.output_cost IS NULL
                 AND o.total_cost IS NULL
            THEN o.prompt_tokens::numeric * price.input_price
            ELSE coalesce(o.calculated_input_cost, o.input_cost) END AS calculated_input_cost,
       CASE WHEN o.calculated_output_cost IS NULL AND o.input_cost IS NULL AND o.output_cost IS NULL
                 AND o.total_cost IS NULL
            THEN o.completion_tokens::numeric * price.output_price
            ELSE coalesce(o.calculated_output_cost, o.output_cost) END AS calculated_output_cost,
       CASE WHEN o.calculated_total_cost IS NULL AND o.input_cost IS NULL AND o.output_cost IS NULL
                 AND o.total_cost IS NULL
            THEN CASE WHEN price.total_price IS NOT NULL AND o.total_tokens IS NOT NULL
                      THEN price.total_price * o.total_tokens::numeric
                      ELSE o.prompt_tokens::numeric * price.input_price
                           + o.completion_tokens::numeric * price.output_price END
            ELSE coalesce(o.calculated_total_cost, o.total_cost) END AS calculated_total_cost,
       CASE WHEN o.end_time IS NULL THEN NULL
            ELSE (extract(epoch FROM o.end_time) - extract(epoch FROM o.start_time))::double precision END AS latency,
       CASE WHEN o.completion_start_time IS NULL THEN NULL
            ELSE extract(epoch FROM o.completion_start_time - o.start_time)::double precision END AS time_to_first_token
FROM observations o
LEFT JOIN LATERAL (
    SELECT m.* FROM models m
    WHERE (m.project_id = o.project_id OR m.project_id IS NULL)
      AND m.model_name = o.internal_model
      AND (m.start_date < o.start_time OR m.start_date IS NULL)
      AND m.unit = o.unit
    ORDER BY m.project_id ASC, m.start_date DESC NULLS LAST  -- the project's row first; nulls sort last
    LIMIT 1
) price ON true
LEFT JOIN LATERAL (
    SELECT p.name, p.version FROM prompts p WHERE p.id = o.prompt_id AND p.project_id = o.project_id LIMIT 1
) prompt ON true;
