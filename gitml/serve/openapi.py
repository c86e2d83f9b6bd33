"""The server's OpenAPI 3.0 document (built from the active version's input schema)."""

from __future__ import annotations

from typing import Any

from gitml.serve.schema import Schema

_JSON_TYPE = {"float64": {"type": "number"}, "int64": {"type": "integer"},
              "bool": {"type": "boolean"}, "string": {"type": "string"}}


def _err(desc: str) -> dict[str, Any]:
    return {"description": desc, "content": {"application/json": {"schema": {"type": "object"}}}}


def _ok(desc: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    body = {"application/json": {"schema": schema or {"type": "object"}}}
    return {"description": desc, "content": body}


def document(model: str, schema: Schema | None, versions: list[str] | None = None) -> dict[str, Any]:
    props: dict[str, Any] = {}
    names: list[str] = []
    if schema is not None:
        names = schema.names
        for i in schema.inputs:
            t: dict[str, Any] = dict(_JSON_TYPE[i.dtype])
            if i.nullable:
                t["nullable"] = True
            props[i.name] = t
    record = {"type": "object", "properties": props, "required": names}
    column_values = {"type": "object", "properties": {k: {"type": "array", "items": v}
                                                      for k, v in props.items()},
                     "required": names}
    split = {"type": "object", "required": ["columns", "data"], "properties": {
        "columns": {"type": "array", "items": {"type": "string"}},
        "data": {"type": "array", "items": {"type": "array", "items": {}}}}}
    invocation = {"type": "object", "oneOf": [
        {"type": "object", "required": ["dataframe_split"], "properties": {"dataframe_split": split}},
        {"type": "object", "required": ["dataframe_records"],
         "properties": {"dataframe_records": {"type": "array", "items": record}}},
        {"type": "object", "required": ["instances"],
         "properties": {"instances": {"type": "array", "items": record}}},
        {"type": "object", "required": ["inputs"], "properties": {"inputs": column_values}},
    ]}
    tensor = {"type": "object", "required": ["name", "shape", "datatype"], "properties": {
        "name": {"type": "string", "enum": names} if names else {"type": "string"},
        "shape": {"type": "array", "items": {"type": "integer"}},
        "datatype": {"type": "string", "enum": ["BYTES", "BOOL", "INT8", "INT16", "INT32", "INT64",
                                                 "UINT8", "UINT16", "UINT32", "UINT64",
                                                 "FP16", "FP32", "FP64"]},
        "data": {"type": "array", "items": {}},
        "parameters": {"type": "object"}}}
    infer = {"type": "object", "required": ["inputs"], "properties": {
        "id": {"type": "string"},
        "parameters": {"type": "object"},
        "inputs": {"type": "array", "items": tensor},
        "outputs": {"type": "array", "items": {"type": "object", "required": ["name"], "properties": {
            "name": {"type": "string"}, "parameters": {"type": "object"}}}}}}
    errors = {"400": _err("bad request (the message names the problem)"),
              "401": _err("bearer token missing or wrong"), "404": _err("unknown model/version"),
              "405": _err("wrong method"),
              "413": _err("body too large"), "415": _err("unsupported content type"),
              "422": _err("the model refused the input"), "503": _err("no version loaded yet")}
    name_p = {"name": "name", "in": "path", "required": True, "schema": {"type": "string", "enum": [model]}}
    ver_p = {"name": "version", "in": "path", "required": True,
             "schema": {"type": "string", **({"enum": versions} if versions else {})}}
    plain = {"200": {"description": "ok"}, **errors}
    infer_op = {"requestBody": {"required": True, "content": {"application/json": {"schema": infer}}},
                "responses": {"200": _ok("predictions"), **errors}}
    return {
        "openapi": "3.0.3",
        "info": {"title": f"gitml model server: {model}", "version": "1"},
        "paths": {
            "/invocations": {"post": {
                "summary": "MLflow scoring protocol",
                "requestBody": {"required": True, "content": {
                    "application/json": {"schema": invocation},
                    "text/csv": {"schema": {"type": "string"}}}},
                "responses": {"200": _ok("predictions", {"type": "object", "properties": {
                    "predictions": {"type": "array", "items": {}}}}), **errors}}},
            "/ping": {"get": {"responses": plain}},
            "/health": {"get": {"responses": plain}},
            "/v2": {"get": {"responses": {"200": _ok("server metadata"), **errors}}},
            "/v2/health/live": {"get": {"responses": plain}},
            "/v2/health/ready": {"get": {"responses": plain}},
            "/v2/models/{name}": {"get": {"parameters": [name_p],
                                          "responses": {"200": _ok("model metadata"), **errors}}},
            "/v2/models/{name}/ready": {"get": {"parameters": [name_p], "responses": plain}},
            "/v2/models/{name}/versions/{version}": {"get": {
                "parameters": [name_p, ver_p], "responses": {"200": _ok("version metadata"), **errors}}},
            "/v2/models/{name}/versions/{version}/ready": {"get": {
                "parameters": [name_p, ver_p], "responses": plain}},
            "/v2/models/{name}/infer": {"post": {"parameters": [name_p], **infer_op}},
            "/v2/models/{name}/versions/{version}/infer": {"post": {
                "parameters": [name_p, ver_p], **infer_op}},
            "/feedback": {"post": {
                "summary": "delayed ground-truth labels, joined to the traffic log by request id",
                "requestBody": {"required": True, "content": {"application/json": {"schema": {
                    "type": "object", "required": ["request_id", "label"], "properties": {
                        "request_id": {"type": "string"}, "row": {"type": "integer"},
                        "label": {"type": "string"}}}}}},
                "responses": {"200": _ok("accepted"), "409": _err("traffic log off"), **errors}}},
            "/metrics": {"get": {"responses": {"200": {"description": "Prometheus text format",
                                                       "content": {"text/plain": {"schema": {"type": "string"}}}},
                                               **errors}}},
        },
    }
