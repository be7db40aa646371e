//! The OpenAPI 3.1 document served at `/v1/openapi.json`. Written by hand
//! next to the routes (a test checks that every route of the router is
//! documented and every documented path is routed).

use serde_json::{Value, json};

fn error_response(description: &str) -> Value {
    json!({
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    })
}

fn json_response(description: &str, schema: &str) -> Value {
    json!({
        "description": description,
        "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}}
    })
}

/// A response with OpenAPI links: `(name, operationId, runtime expression
/// of the `id` parameter)`.
fn linked(mut response: Value, links: &[(&str, &str, &str)]) -> Value {
    let mut map = serde_json::Map::new();
    for (name, op, id) in links {
        map.insert(
            (*name).into(),
            json!({"operationId": op, "parameters": {"id": id}}),
        );
    }
    response["links"] = Value::Object(map);
    response
}

fn id_param(name: &str, what: &str) -> Value {
    json!({"name": name, "in": "path", "required": true, "description": what, "schema": {"type": "string"}})
}

/// Responses every authenticated route may give.
fn common(mut responses: Value) -> Value {
    let map = responses.as_object_mut().expect("responses are an object");
    map.insert("401".into(), error_response("Missing or invalid bearer token"));
    map.insert("503".into(), error_response("The server is shutting down"));
    map.insert("500".into(), error_response("The store failed"));
    responses
}

/// The document.
pub fn document() -> Value {
    let run_status = json!({"type": "string", "enum": ["queued", "running", "succeeded", "failed", "cancelled", "interrupted", "skipped", "input_required"]});
    let pending_input = json!({
        "type": ["object", "null"],
        "description": "What a run paused at an `await_input` node asks for",
        "required": ["node", "prompt", "schema", "requested_at"],
        "properties": {
            "run_id": {"type": "string"},
            "node": {"type": "string"},
            "prompt": {"type": "string"},
            "schema": {"description": "The JSON Schema the answer must match"},
            "requested_at": {"type": "string"}
        }
    });
    let session_state = json!({"type": "string", "enum": ["pending", "ready", "busy", "idle", "input_required", "draining", "closed", "expired", "aborted", "failed"]});
    let string_list = json!({"type": "array", "items": {"type": "string"}});
    // A session's launcher resources (crate::resources): what a creation
    // takes, and what a session shows (memory in bytes, unset fields null).
    let slurm_name =
        json!({"type": ["string", "null"], "minLength": 1, "maxLength": crate::resources::NAME_MAX});
    let count = json!({"type": ["integer", "null"], "minimum": 1, "maximum": 4294967295u64});
    let resources_request = json!({
        "type": ["object", "null"],
        "additionalProperties": false,
        "description": "Launcher resources of the session's workers; each field set overrides the server's default (Slurm: all; Kubernetes: cpus, memory, gpus, time_limit; Ray: cpus, memory, gpus; process: memory)",
        "properties": {
            "partition": slurm_name,
            "account": slurm_name,
            "time_limit": {"type": ["string", "null"], "minLength": 1, "description": "Slurm time limit: MINUTES, MINUTES:SECONDS, HOURS:MINUTES:SECONDS, DAYS-HOURS[:MINUTES[:SECONDS]] or UNLIMITED"},
            "cpus": count,
            "memory": {"type": ["integer", "string", "null"], "minimum": 1, "maximum": 18446744073709551615u64, "minLength": 1, "description": "Bytes, or a size such as 512MiB or 2G"},
            "gpus": count
        }
    });
    let resources_view = json!({
        "type": "object",
        "required": ["partition", "account", "time_limit", "cpus", "memory", "gpus"],
        "properties": {
            "partition": {"type": ["string", "null"]},
            "account": {"type": ["string", "null"]},
            "time_limit": {"type": ["string", "null"]},
            "cpus": {"type": ["integer", "null"]},
            "memory": {"type": ["integer", "null"], "description": "Bytes"},
            "gpus": {"type": ["integer", "null"]}
        }
    });
    let mut doc = json!({
        "openapi": "3.1.0",
        "info": {
            "title": "weft serve",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Sessions as a service: a durable run queue per session, live events, idle expiry and crash recovery."
        },
        "servers": [{"url": "/"}],
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {"error": {
                        "type": "object",
                        "required": ["code", "message"],
                        "properties": {
                            "code": {"type": "string"},
                            "message": {"type": "string"},
                            "path": {"type": "string", "description": "The bad field (`runs[0].tags`)"},
                            "problems": string_list,
                            "node": {"type": "string", "description": "The `await_input` node an invalid answer was for"},
                            "errors": {"type": "array", "description": "Each way an answer breaks the node's schema", "items": {
                                "type": "object",
                                "required": ["path", "message"],
                                "properties": {"path": {"type": "string", "description": "JSON Pointer into the answer"}, "message": {"type": "string"}}
                            }}
                        }
                    }}
                },
                "CreateSession": {
                    "type": "object",
                    "additionalProperties": false,
                    "properties": {
                        "project": {"type": ["string", "null"], "description": "Project folder on the server (default: the server's)"},
                        "env": {"type": ["string", "null"]},
                        "key": {"type": ["string", "null"], "minLength": 1, "maxLength": 200, "description": "Reuse a live session with this key"},
                        "idle_ttl_s": {"type": ["integer", "null"], "minimum": 0, "maximum": 18446744073709551615u64},
                        "max_concurrency": {"type": ["integer", "null"], "minimum": 1, "maximum": 4294967295u64},
                        "resources": resources_request
                    }
                },
                "Session": {
                    "type": "object",
                    "required": ["id", "state", "phase", "runs", "created_at", "last_heartbeat_at", "idle_ttl_s", "max_concurrency", "resources"],
                    "properties": {
                        "id": {"type": "string"},
                        "key": {"type": ["string", "null"]},
                        "project": {"type": "string"},
                        "env": {"type": ["string", "null"]},
                        "state": session_state,
                        "phase": {"type": "string", "enum": ["starting", "waiting", "running", "awaiting_input", "terminating", "terminated"]},
                        "runs": {"type": "object", "additionalProperties": {"type": "integer"}, "description": "Run counts by status"},
                        "created_at": {"type": "string"},
                        "last_heartbeat_at": {"type": "string"},
                        "closed_at": {"type": ["string", "null"]},
                        "termination_reason": {"type": ["object", "null"]},
                        "idle_ttl_s": {"type": "integer"},
                        "max_concurrency": {"type": "integer"},
                        "next_action": {"type": ["string", "null"], "description": "`awaiting_input` while a run waits for input"},
                        "pending_input": pending_input,
                        "resources": resources_view
                    }
                },
                "Sessions": {"type": "object", "required": ["sessions"], "properties": {"sessions": {"type": "array", "items": {"$ref": "#/components/schemas/Session"}}}},
                "RunSpec": {
                    "type": "object",
                    "additionalProperties": false,
                    "description": "A run configuration, as `weft run` takes it.",
                    "properties": {
                        "run_id": {"type": ["string", "null"]},
                        "pipeline_names": string_list,
                        "tags": string_list,
                        "runner": {"type": ["string", "null"]},
                        "max_workers": {"type": ["integer", "null"], "minimum": 0, "maximum": 18446744073709551615u64},
                        "timeout": {"type": ["string", "null"], "description": "The run's time limit: `500ms`, `30s`, `5m`, `1h`"},
                        "node_names": string_list,
                        "from_nodes": string_list,
                        "to_nodes": string_list,
                        "from_inputs": string_list,
                        "to_outputs": string_list,
                        "load_versions": {"type": "object", "additionalProperties": {"type": "string"}},
                        "namespaces": string_list,
                        "only_missing_outputs": {"type": "boolean"},
                        "runtime_params": {},
                        "env": {"type": ["string", "null"]},
                        "inputs": {"type": "object", "additionalProperties": {}, "description": "Dataset name → JSON value, a memory dataset for this run only"},
                        "answers": {"type": "object", "additionalProperties": {}, "description": "`await_input` node name → answer (checked against the node's schema)"}
                    }
                },
                "SubmitRuns": {
                    "type": "object",
                    "description": "Either `runs` (a non-empty list of specs, no `sweep`) or `spec` (with an optional `sweep`). A sweep that does not parse is 422.",
                    "additionalProperties": false,
                    "properties": {
                        "runs": {"type": ["array", "null"], "items": {"$ref": "#/components/schemas/RunSpec"}},
                        "spec": {"oneOf": [{"$ref": "#/components/schemas/RunSpec"}, {"type": "null"}]},
                        "sweep": {"type": "array", "items": {"type": "string"}, "description": "Overrides in the `weft multirun` grammar (`lr=0.1,0.01`)"},
                        "retries": {"type": "integer", "minimum": 0, "maximum": 4294967295u64, "description": "Re-queue a run interrupted by a crash this many times"}
                    },
                    "oneOf": [
                        {
                            "required": ["runs"],
                            "properties": {
                                "runs": {"type": "array", "minItems": 1},
                                "spec": {"type": "null"},
                                "sweep": {"type": "array", "maxItems": 0}
                            }
                        },
                        {
                            "required": ["spec"],
                            "properties": {
                                "spec": {"$ref": "#/components/schemas/RunSpec"},
                                "runs": {"type": "null"}
                            }
                        }
                    ]
                },
                "Accepted": {
                    "type": "object",
                    "required": ["run_ids"],
                    "properties": {
                        "run_ids": string_list,
                        "runs": {"type": "array", "items": {"$ref": "#/components/schemas/Run"}},
                        "timed_out": {"type": "boolean"}
                    }
                },
                "Run": {
                    "type": "object",
                    "required": ["id", "run_id", "session_id", "status"],
                    "properties": {
                        "id": {"type": "string"},
                        "run_id": {"type": "string"},
                        "session_id": {"type": "string"},
                        "run_index": {"type": "integer"},
                        "status": run_status,
                        "env": {"type": "string"},
                        "runtime_params": {},
                        "pipeline_names": string_list,
                        "filters": {},
                        "load_versions": {"type": "object"},
                        "saved_versions": {"type": "object"},
                        "start_time": {"type": ["string", "null"]},
                        "end_time": {"type": ["string", "null"]},
                        "duration_ms": {"type": ["number", "null"]},
                        "error": {"type": ["object", "null"]},
                        "attempts": {"type": "integer"},
                        "node_timings": {"type": "array"},
                        "metrics": {"type": "object"},
                        "pending_input": pending_input,
                        "owner": {"type": ["string", "null"]}
                    }
                },
                "Runs": {
                    "type": "object",
                    "required": ["runs"],
                    "properties": {
                        "runs": {"type": "array", "items": {"$ref": "#/components/schemas/Run"}},
                        "next_cursor": {"type": ["string", "null"]}
                    }
                },
                "Status": {"type": "object", "required": ["status"], "properties": {"status": {"type": "string"}}},
                "Event": {
                    "type": "object",
                    "description": "One server-sent event (the schema of each event of the stream, as OpenAPI 3.1 reads `schema` for text/event-stream)",
                    "required": ["event", "data"],
                    "properties": {
                        "event": {"type": "string", "enum": ["hello", "session", "run_queued", "run_started", "node_finished", "run_finished", "input_required", "input_provided", "gap"]},
                        "data": {"type": "string", "description": "JSON"},
                        "id": {"type": "string", "description": "`<boot>-<seq>`: send it back as Last-Event-ID to resume"},
                        "retry": {"type": "integer"}
                    }
                }
            }
        },
        "security": [{"bearer": []}],
        "paths": {
            "/healthz": {"get": {
                "operationId": "healthz", "summary": "Liveness (no token needed)", "security": [],
                "responses": {"200": json_response("Alive", "Status")}
            }},
            "/readyz": {"get": {
                "operationId": "readyz", "summary": "Readiness: 503 while shutting down",
                "responses": common(json!({"200": json_response("Ready", "Status")}))
            }},
            "/metrics": {"get": {
                "operationId": "metrics", "summary": "Prometheus metrics",
                "responses": common(json!({"200": {"description": "Text exposition format", "content": {"text/plain": {"schema": {"type": "string"}}}}}))
            }},
            "/v1/openapi.json": {"get": {
                "operationId": "openapi", "summary": "This document",
                "responses": common(json!({"200": {"description": "OpenAPI 3.1", "content": {"application/json": {"schema": {"type": "object"}}}}}))
            }},
            "/v1/sessions": {
                "post": {
                    "operationId": "createSession",
                    "summary": "Create a session, or reuse the live one holding `key`",
                    "requestBody": {"required": false, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/CreateSession"}}}},
                    "responses": common(json!({
                        "201": linked(json_response("Created", "Session"), &[
                            ("GetSession", "getSession", "$response.body#/id"),
                            ("Heartbeat", "heartbeat", "$response.body#/id"),
                            ("SubmitRuns", "submitRuns", "$response.body#/id"),
                            ("ListSessionRuns", "listSessionRuns", "$response.body#/id"),
                            ("ListPipelines", "listPipelines", "$response.body#/id"),
                            ("DeleteSession", "deleteSession", "$response.body#/id")
                        ]),
                        "200": linked(json_response("The live session holding the key", "Session"), &[
                            ("GetSession", "getSession", "$response.body#/id"),
                            ("Heartbeat", "heartbeat", "$response.body#/id"),
                            ("SubmitRuns", "submitRuns", "$response.body#/id"),
                            ("ListSessionRuns", "listSessionRuns", "$response.body#/id"),
                            ("ListPipelines", "listPipelines", "$response.body#/id"),
                            ("DeleteSession", "deleteSession", "$response.body#/id")
                        ]),
                        "400": error_response("Malformed body"),
                        "413": error_response("Body too large"),
                        "422": error_response("The project does not open")
                    }))
                },
                "get": {
                    "operationId": "listSessions",
                    "summary": "List sessions (live ones unless `all` or a terminal `state`)",
                    "parameters": [
                        {"name": "state", "in": "query", "schema": session_state},
                        {"name": "all", "in": "query", "schema": {"type": "boolean"}}
                    ],
                    "responses": common(json!({"200": json_response("Sessions", "Sessions"), "400": error_response("Bad query")}))
                }
            },
            "/v1/sessions/{id}": {
                "parameters": [id_param("id", "Session id")],
                "get": {
                    "operationId": "getSession",
                    "summary": "A session",
                    "responses": common(json!({"200": json_response("The session", "Session"), "404": error_response("No such session")}))
                },
                "delete": {
                    "operationId": "deleteSession",
                    "summary": "Terminate (idempotent; the first reason is kept)",
                    "parameters": [{"name": "mode", "in": "query", "schema": {"type": "string", "enum": ["drain", "cancel"]}}],
                    "responses": common(json!({"202": json_response("Terminating or terminated", "Session"), "400": error_response("Bad mode"), "404": error_response("No such session")}))
                }
            },
            "/v1/sessions/{id}/heartbeat": {
                "parameters": [id_param("id", "Session id")],
                "post": {
                    "operationId": "heartbeat",
                    "summary": "Keep the session alive",
                    "responses": common(json!({"200": json_response("The session", "Session"), "404": error_response("No such session"), "409": error_response("The session is over")}))
                }
            },
            "/v1/sessions/{id}/runs": {
                "parameters": [id_param("id", "Session id")],
                "post": {
                    "operationId": "submitRuns",
                    "summary": "Queue runs; answered once they are durably queued",
                    "parameters": [
                        {"name": "wait", "in": "query", "schema": {"type": "boolean"}},
                        {"name": "timeout_s", "in": "query", "description": "With wait: seconds to wait (default 60, at most 3600)", "schema": {"type": "number", "minimum": 0}},
                        {"name": "Idempotency-Key", "in": "header", "schema": {"type": "string", "minLength": 1, "maxLength": 200}}
                    ],
                    "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/SubmitRuns"}}}},
                    "responses": common(json!({
                        "202": linked(json_response("Queued (or, with wait, not finished in time)", "Accepted"), &[
                            ("GetRun", "getRun", "$response.body#/run_ids/0"),
                            ("CancelRun", "cancelRun", "$response.body#/run_ids/0")
                        ]),
                        "200": linked(json_response("With wait: every run finished", "Accepted"), &[
                            ("GetRun", "getRun", "$response.body#/run_ids/0"),
                            ("CancelRun", "cancelRun", "$response.body#/run_ids/0")
                        ]),
                        "400": error_response("Malformed body or sweep"),
                        "404": error_response("No such session"),
                        "409": error_response("The session accepts no runs, or a run id exists"),
                        "413": error_response("Body too large"),
                        "422": error_response("Unknown pipeline, node, dataset, env or parameter"),
                        "429": error_response("Too many queued runs or too large a sweep")
                    }))
                },
                "get": {
                    "operationId": "listSessionRuns",
                    "summary": "The session's runs, newest first",
                    "parameters": [
                        {"name": "status", "in": "query", "schema": run_status},
                        {"name": "limit", "in": "query", "description": "Page size, clamped to 1..=1000 (default 100)", "schema": {"type": "integer", "minimum": 0, "maximum": 4294967295u64}},
                        {"name": "cursor", "in": "query", "schema": {"type": "string"}}
                    ],
                    "responses": common(json!({"200": json_response("Runs", "Runs"), "400": error_response("Bad query"), "404": error_response("No such session")}))
                }
            },
            "/v1/sessions/{id}/events": {
                "parameters": [id_param("id", "Session id")],
                "get": {
                    "operationId": "sessionEvents",
                    "summary": "Server-sent events: session, run_queued, run_started, node_finished, run_finished, gap",
                    "parameters": [{"name": "Last-Event-ID", "in": "header", "schema": {"type": "string"}}],
                    "responses": common(json!({
                        "200": {"description": "An event stream; each event's `data` is a JSON object", "content": {"text/event-stream": {"schema": {"$ref": "#/components/schemas/Event"}}}},
                        "404": error_response("No such session"),
                        "409": error_response("The session is over")
                    }))
                }
            },
            "/v1/runs/{id}": {
                "parameters": [id_param("id", "Run id")],
                "get": {
                    "operationId": "getRun",
                    "summary": "A run",
                    "responses": common(json!({"200": json_response("The run", "Run"), "404": error_response("No such run")}))
                }
            },
            "/v1/runs/{id}/cancel": {
                "parameters": [id_param("id", "Run id")],
                "post": {
                    "operationId": "cancelRun",
                    "summary": "Cancel: a queued run without running it, a running one between nodes",
                    "responses": common(json!({"202": json_response("Cancelled or cancelling", "Run"), "404": error_response("No such run"), "409": error_response("Already finished")}))
                }
            },
            "/v1/runs/{id}/input": {
                "parameters": [id_param("id", "Run id")],
                "post": {
                    "operationId": "provideInput",
                    "summary": "Answer a run waiting at an `await_input` node: the answer is checked against the node's JSON Schema and the run is queued again",
                    "requestBody": {"required": true, "content": {"application/json": {"schema": {
                        "type": "object",
                        "additionalProperties": false,
                        "required": ["input"],
                        "properties": {
                            "input": {"description": "The answer: any JSON value the node's schema accepts"},
                            "node": {"type": ["string", "null"], "description": "The node answered (default: the one the run waits at)"}
                        }
                    }}}},
                    "responses": common(json!({
                        "202": json_response("Answered: the run is queued again", "Run"),
                        "400": error_response("Malformed body"),
                        "404": error_response("No such run"),
                        "409": error_response("The run does not wait for input"),
                        "413": error_response("Body too large"),
                        "422": error_response("The answer does not match the node's schema (`errors` lists each JSON Pointer path)")
                    }))
                }
            },
            "/v1/runs/{id}/logs": {
                "parameters": [id_param("id", "Run id")],
                "get": {
                    "operationId": "getRunLogs",
                    "summary": "The run's log lines; with follow, streamed until the run has finished",
                    "parameters": [{"name": "follow", "in": "query", "schema": {"type": "boolean"}}],
                    "responses": common(json!({
                        "200": {"description": "Log lines", "content": {"text/plain": {"schema": {"type": "string"}}}},
                        "400": error_response("Bad query"),
                        "404": error_response("No such run, or this server keeps no run logs")
                    }))
                }
            }
        }
    });
    pipeline_docs(&mut doc, &string_list);
    dataset_docs(&mut doc);
    doc
}

/// The saved-datasets endpoints (charts on the web page) and their schemas.
/// Adds `schemas` to the document's component schemas and `paths` to its
/// paths.
fn extend(doc: &mut Value, schemas: Value, paths: Value) {
    let add = |target: &mut Value, add: Value| {
        if let (Some(t), Value::Object(add)) = (target.as_object_mut(), add) {
            t.extend(add);
        }
    };
    add(&mut doc["components"]["schemas"], schemas);
    add(&mut doc["paths"], paths);
}

fn dataset_docs(doc: &mut Value) {
    let schemas = json!({
        "RunDataset": {
            "type": "object",
            "additionalProperties": false,
            "required": ["name", "type", "version", "pinned", "content_type", "size", "available", "chart", "url"],
            "properties": {
                "name": {"type": "string", "description": "Catalog name"},
                "type": {"type": "string", "description": "Dataset type (`matplotlib.MatplotlibDataset`, `plotly.JSONDataset`, `pandas.CSVDataset`...)"},
                "version": {"type": ["string", "null"], "description": "The version the run saved (versioned datasets)"},
                "pinned": {"type": "boolean", "description": "Whether the file is the run's own (the version it saved, or its run-scoped copy); false: the dataset's current file, which a later run may have replaced"},
                "content_type": {"type": "string", "description": "What the file is served as"},
                "size": {"type": ["integer", "null"], "minimum": 0, "description": "Bytes (null on object storage or when the file is gone)"},
                "available": {"type": "boolean", "description": "Whether the file is still there"},
                "chart": {"type": ["string", "null"], "enum": ["image", "plotly", null], "description": "`image`: a PNG/SVG chart; `plotly`: Plotly figure JSON"},
                "url": {"type": "string", "description": "Where the bytes are"}
            }
        },
        "RunDatasets": {
            "type": "object",
            "additionalProperties": false,
            "required": ["run_id", "datasets"],
            "properties": {
                "run_id": {"type": "string"},
                "datasets": {"type": "array", "items": {"$ref": "#/components/schemas/RunDataset"}}
            }
        }
    });
    let bytes = json!({"schema": {"type": "string", "format": "binary"}});
    let paths = json!({
        "/v1/runs/{id}/datasets": {
            "parameters": [id_param("id", "Run id")],
            "get": {
                "operationId": "listRunDatasets",
                "summary": "The files the run saved (outputs of the nodes it ran that have one file), charts marked",
                "responses": common(json!({
                    "200": {
                        "description": "The run's saved files",
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/RunDatasets"}}},
                        "links": {"GetRunDataset": {"operationId": "getRunDataset", "parameters": {"id": "$request.path.id", "name": "$response.body#/datasets/0/name"}}}
                    },
                    "404": error_response("No such run"),
                    "409": error_response("The run's project or catalog no longer loads")
                }))
            }
        },
        "/v1/runs/{id}/datasets/{name}": {
            "parameters": [id_param("id", "Run id"), {
                "name": "name", "in": "path", "required": true,
                "description": "Dataset name (no `/`, `\\` or control characters)",
                "schema": {"type": "string", "minLength": 1, "pattern": "^[^/\\\\\\u0000-\\u001f\\u007f-\\u009f]+$"}
            }],
            "get": {
                "operationId": "getRunDataset",
                "summary": "The bytes of a dataset as the run saved it (the version it recorded; for a non-versioned dataset the current file, `X-Weft-Pinned: false`)",
                "responses": common(json!({
                    "200": {
                        "description": "The file, with its content type; `Content-Security-Policy: sandbox`",
                        "headers": {
                            "X-Weft-Pinned": {"description": "`true`: the run's own file; `false`: the dataset's current file", "schema": {"type": "string", "enum": ["true", "false"]}},
                            "X-Weft-Version": {"description": "The version served (versioned datasets)", "schema": {"type": "string"}}
                        },
                        "content": {
                            "image/png": bytes.clone(),
                            "image/jpeg": bytes.clone(),
                            "image/gif": bytes.clone(),
                            "image/webp": bytes.clone(),
                            "image/svg+xml": bytes.clone(),
                            "application/json": {"schema": {}},
                            "application/x-ndjson": bytes.clone(),
                            "text/csv": bytes.clone(),
                            "text/tab-separated-values": bytes.clone(),
                            "text/plain": bytes.clone(),
                            "application/yaml": bytes.clone(),
                            "application/vnd.apache.parquet": bytes.clone(),
                            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": bytes.clone(),
                            "application/vnd.ms-excel": bytes.clone(),
                            "application/vnd.oasis.opendocument.spreadsheet": bytes.clone(),
                            "application/octet-stream": bytes.clone()
                        }
                    },
                    "400": error_response("Not a dataset name (it has `/`, `\\` or control characters)"),
                    "404": error_response("No such run, the run saved no such dataset, or the dataset has no file (memory)"),
                    "409": error_response("The run's project or catalog no longer loads"),
                    "422": error_response("The file is larger than the server serves")
                }))
            }
        }
    });
    extend(doc, schemas, paths);
}

/// The pipeline read endpoints (used by the web page) and their schemas.
fn pipeline_docs(doc: &mut Value, string_list: &Value) {
    let schemas = json!({
                "PipelineSummary": {
                    "type": "object",
                    "required": ["name", "nodes", "layers", "namespaces", "tags"],
                    "properties": {
                        "name": {"type": "string"},
                        "nodes": {"type": "integer", "minimum": 0},
                        "layers": {"type": "integer", "minimum": 0},
                        "namespaces": string_list,
                        "tags": string_list
                    }
                },
                "Pipelines": {"type": "object", "required": ["pipelines"], "properties": {"pipelines": {"type": "array", "items": {"$ref": "#/components/schemas/PipelineSummary"}}}},
                "Pipeline": {
                    "type": "object",
                    "required": ["name", "nodes", "edges", "layers", "namespaces", "tags", "inputs", "outputs"],
                    "properties": {
                        "name": {"type": "string"},
                        "nodes": {"type": "array", "description": "In topological order, layer by layer", "items": {
                            "type": "object",
                            "required": ["name", "short_name", "func", "inputs", "outputs", "tags", "namespace", "layer"],
                            "properties": {
                                "name": {"type": "string"},
                                "short_name": {"type": "string"},
                                "func": {"type": "string"},
                                "inputs": string_list,
                                "outputs": string_list,
                                "tags": string_list,
                                "namespace": {"type": ["string", "null"]},
                                "layer": {"type": "integer", "minimum": 0}
                            }
                        }},
                        "edges": {"type": "array", "description": "`[from, to]` indices into `nodes`", "items": {"type": "array", "items": {"type": "integer", "minimum": 0}, "minItems": 2, "maxItems": 2}},
                        "layers": {"type": "integer", "minimum": 0},
                        "namespaces": string_list,
                        "tags": string_list,
                        "inputs": string_list,
                        "outputs": string_list
                    }
                }
    });
    let paths = json!({
            "/v1/sessions/{id}/pipelines": {
                "parameters": [id_param("id", "Session id")],
                "get": {
                    "operationId": "listPipelines",
                    "summary": "The pipelines of a live session's project",
                    "responses": common(json!({
                        "200": {
                            "description": "The pipelines",
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Pipelines"}}},
                            "links": {
                                "GetPipeline": {"operationId": "getPipeline", "parameters": {"id": "$request.path.id", "name": "$response.body#/pipelines/0/name"}},
                                "DrawPipeline": {"operationId": "drawPipeline", "parameters": {"id": "$request.path.id", "name": "$response.body#/pipelines/0/name"}}
                            }
                        },
                        "404": error_response("No such session"),
                        "409": error_response("The session is over (its pipelines are not loaded)")
                    }))
                }
            },
            "/v1/sessions/{id}/pipelines/{name}": {
                "parameters": [id_param("id", "Session id"), id_param("name", "Pipeline name")],
                "get": {
                    "operationId": "getPipeline",
                    "summary": "A pipeline's nodes, datasets, tags, namespaces and layers",
                    "responses": common(json!({
                        "200": json_response("The pipeline", "Pipeline"),
                        "404": error_response("No such session or pipeline"),
                        "409": error_response("The session is over (its pipelines are not loaded)")
                    }))
                }
            },
            "/v1/sessions/{id}/pipelines/{name}/svg": {
                "parameters": [id_param("id", "Session id"), id_param("name", "Pipeline name")],
                "get": {
                    "operationId": "drawPipeline",
                    "summary": "The pipeline laid out by layers, as SVG (used by the web page)",
                    "parameters": [
                        {"name": "collapse", "in": "query", "description": "Namespaces drawn as one box each, comma-separated", "schema": {"type": "string"}},
                        {"name": "tags", "in": "query", "description": "Only nodes with any of these tags, comma-separated", "schema": {"type": "string"}},
                        {"name": "run", "in": "query", "description": "Colour the nodes by this run's node states", "schema": {"type": "string"}}
                    ],
                    "responses": common(json!({
                        "200": {"description": "An SVG document", "content": {"image/svg+xml": {"schema": {"type": "string"}}}},
                        "400": error_response("Bad query"),
                        "404": error_response("No such session, pipeline or run"),
                        "409": error_response("The session is over (its pipelines are not loaded)")
                    }))
                }
            }
    });
    extend(doc, schemas, paths);
}
