"""The OpenAPI 3.0 document of the JSON API, served at /api/v1/openapi.json and checked against the routes."""

from __future__ import annotations

from typing import Any

from lockr_local import __version__


def _error_response(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


def _json(schema_ref: str, description: str) -> dict[str, Any]:
    return {"description": description,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema_ref}"}}}}


ERRORS = {
    "400": _error_response("Malformed request: bad JSON, name, size, region or keyHash."),
    "401": _error_response("Missing or invalid credentials."),
    "403": _error_response("Quota exceeded or key restrictions."),
    "404": _error_response("Unknown id, or someone else's file."),
    "413": _error_response("Larger than the plan allows (5 GB guest, 100 GB account)."),
    "429": {**_error_response("Burst protection: retry after Retry-After seconds."),
            "headers": {"Retry-After": {"schema": {"type": "integer"}}}},
}


def _errors(*codes: str) -> dict[str, Any]:
    return {code: ERRORS[code] for code in codes}


FILE_ID = {"name": "id", "in": "path", "required": True,
           "schema": {"type": "string", "pattern": "^[0-9a-f]{32}$"}}

# A share link (which carries the file id) gives read access only; attaching a guest upload to an account
# takes this secret, which only the uploader got.
CLAIM_TOKEN = {"type": "string", "description": (
    "Only in the answer to a guest's upload (a direct upload, or the answer that opens a session; tus: the "
    "Lockr-Claim-Token header): the secret that registers the file to an account with POST "
    "/api/v1/files/register. Shown once; the server keeps only its hash. The share link is not enough.")}

SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object", "required": ["error"], "additionalProperties": False,
        "properties": {"error": {"type": "object", "required": ["code", "message"],
                                 "properties": {"code": {"type": "string"}, "message": {"type": "string"}}}},
    },
    "File": {
        "type": "object",
        "required": ["id", "name", "size", "type", "region", "sha256", "hasKey", "createdAt", "downloadUrl"],
        "properties": {
            "id": {"type": "string"}, "name": {"type": "string"}, "size": {"type": "integer", "minimum": 0},
            "type": {"type": "string"}, "region": {"type": "string"}, "sha256": {"type": "string"},
            "hasKey": {"type": "boolean"}, "createdAt": {"type": "string"}, "downloadUrl": {"type": "string"},
            "pageUrl": {"type": "string"}, "claimToken": CLAIM_TOKEN,
        },
    },
    "FileList": {
        "type": "object", "required": ["files", "next"],
        "properties": {"files": {"type": "array", "items": {"$ref": "#/components/schemas/File"}},
                       "next": {"type": "string", "nullable": True}},
    },
    "TrashList": {
        "type": "object", "required": ["files", "next", "count", "bytes", "retention"],
        "properties": {"files": {"type": "array", "items": {"$ref": "#/components/schemas/TrashedFile"}},
                       "next": {"type": "string", "nullable": True},
                       "count": {"type": "integer", "minimum": 0, "description": "Files in the trash."},
                       "bytes": {"type": "integer", "minimum": 0,
                                 "description": "Their bytes, which count against the quota (in `used`)."},
                       "retention": {"type": "integer", "minimum": 0,
                                     "description": "trash_retention: seconds a file stays before it is purged."}},
    },
    "TrashEmptied": {
        "type": "object", "required": ["deleted", "bytes"],
        "properties": {"deleted": {"type": "integer", "minimum": 0}, "bytes": {"type": "integer", "minimum": 0}},
    },
    "Account": {
        "type": "object", "required": ["username", "email", "quota"],
        "properties": {"username": {"type": "string"}, "email": {"type": "string"}, "quota": {"type": "integer"},
                       "used": {"type": "integer"}, "reserved": {"type": "integer"},
                       "defaultRegion": {"type": "string"}, "regions": {"type": "array", "items": {"type": "string"}}},
    },
    "NewAccount": {
        "type": "object", "required": ["token", "username", "email", "quota"],
        "properties": {"token": {"type": "string"}, "username": {"type": "string"}, "email": {"type": "string"},
                       "quota": {"type": "integer"}},
    },
    "Token": {"type": "object", "required": ["token"],
              "properties": {"token": {"type": "string"}, "expiresAt": {"type": "string", "nullable": True}}},
    "Session": {
        "type": "object", "required": ["id", "uploadUrl", "downloadUrl", "expiresAt"],
        "properties": {"id": {"type": "string"}, "uploadUrl": {"type": "string"}, "downloadUrl": {"type": "string"},
                       "expiresAt": {"type": "string"}, "claimToken": CLAIM_TOKEN},
    },
    "Link": {"type": "object", "required": ["url", "expiresAt"],
             "properties": {"url": {"type": "string"}, "expiresAt": {"type": "string"}}},
}


# A file in the trash: the file object (its links work again after a restore) and its two moments.
SCHEMAS["TrashedFile"] = {
    **SCHEMAS["File"], "required": [*SCHEMAS["File"]["required"], "deletedAt", "purgeAt"],
    "properties": {**SCHEMAS["File"]["properties"], "deletedAt": {"type": "string"},
                   "purgeAt": {"type": "string", "description": "When the reaper deletes it for good."}},
}


def _json_body(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = required
    return {"required": True, "content": {"application/json": {"schema": schema}}}


SESSION_ID = {"name": "sessionId", "in": "path", "required": True, "schema": {"type": "string"}}
TUS_RESUMABLE = {"name": "Tus-Resumable", "in": "header", "required": True,
                 "schema": {"type": "string", "enum": ["1.0.0"]}}

DOWNLOAD: dict[str, Any] = {
    "summary": "Download a file (the file object's downloadUrl)", "security": [{"bearer": []}, {}],
    "parameters": [{"name": "region", "in": "path", "required": True, "schema": {"type": "string"}},
                   FILE_ID,
                   {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}},
                   {"name": "keyHash", "in": "query", "schema": {"type": "string"}},
                   {"name": "expires", "in": "query", "schema": {"type": "string"}},
                   {"name": "sig", "in": "query", "schema": {"type": "string"}},
                   {"name": "Range", "in": "header", "schema": {"type": "string"}}],
    "responses": {"200": {"description": "The bytes."}, "206": {"description": "A range of the bytes."},
                  "304": {"description": "Not modified."},
                  "416": _error_response("Range outside the file."), **_errors("400", "403", "404", "429")},
}

PATHS: dict[str, Any] = {
    "/healthz": {"get": {"summary": "Health check", "security": [],
                         "responses": {"200": {"description": "The server and its database answer; "
                                                              "regions: free bytes of each."},
                                       "503": {"description": "A region has less than min_free_space free."}}},
                 "head": {"summary": "Health check without a body", "security": [],
                          "responses": {"200": {"description": "The server and its database answer."},
                                        "503": {"description": "A region is low on space."}}}},
    "/api/v1/openapi.json": {"get": {"summary": "This document", "security": [],
                                     "responses": {"200": {"description": "OpenAPI 3.0 document."}}}},
    "/api/v1/account": {
        "post": {"summary": "Create an account", "security": [],
                 "requestBody": _json_body({"username": {"type": "string"}, "email": {"type": "string"},
                                            "password": {"type": "string"}}, ["username", "email", "password"]),
                 "responses": {"201": _json("NewAccount", "The account and its first API token."),
                               "409": _error_response("Username or email taken."), **_errors("400", "403", "429")}},
        "get": {"summary": "Your account: quota, usage, regions",
                "responses": {"200": _json("Account", "The account."), **_errors("401", "429")}},
    },
    "/api/v1/login": {
        "post": {"summary": "Exchange credentials for an API token", "security": [],
                 "requestBody": _json_body({"identifier": {"type": "string"}, "password": {"type": "string"}},
                                           ["identifier", "password"]),
                 "responses": {"200": _json("Token", "A new API token."), **_errors("400", "401", "429")}},
    },
    "/api/v1/upload": {
        "post": {"summary": "Direct upload: the body is the file",
                 "parameters": [
                     {"name": "x-file-name", "in": "header", "required": True, "schema": {"type": "string"}},
                     {"name": "x-upload-region", "in": "header", "schema": {"type": "string"}},
                     {"name": "x-key-hash", "in": "header", "schema": {"type": "string"}},
                     {"name": "Idempotency-Key", "in": "header", "schema": {"type": "string"}},
                 ],
                 "requestBody": {"required": True, "content": {"application/octet-stream": {
                     "schema": {"type": "string", "format": "binary"}}}},
                 "responses": {"201": _json("File", "The stored file."),
                               **_errors("400", "401", "403", "413", "429"),
                               "409": _error_response("Idempotency-Key: its first request is still running, or its "
                                                      "file was deleted since."),
                               "422": _error_response("Idempotency-Key already used for another upload."),
                               "507": _error_response("The server's disk is full.")}},
    },
    "/api/v1/upload/session": {
        "post": {"summary": "Create a resumable upload session",
                 "requestBody": _json_body({"name": {"type": "string"}, "size": {"type": "integer"},
                                            "type": {"type": "string"}, "region": {"type": "string"},
                                            "keyHash": {"type": "string"}}, ["name", "size"]),
                 "responses": {"201": _json("Session", "The session."), **_errors("400", "401", "403", "413", "429")}},
    },
    "/api/v1/upload/session/{sessionId}": {
        "put": {"summary": "Send the bytes (or a Content-Range chunk, or ask the status) of a session",
                "security": [],
                "parameters": [SESSION_ID,
                               {"name": "Content-Range", "in": "header", "schema": {"type": "string"}}],
                "requestBody": {"content": {"application/octet-stream": {"schema": {"type": "string",
                                                                                   "format": "binary"}}}},
                "responses": {"200": _json("File", "Complete (status query after completion)."),
                              "201": _json("File", "Complete: the stored file."),
                              "308": {"description": "Incomplete; Range says what is stored."},
                              "409": _error_response("Chunk past the stored offset, or a second writer."),
                              "410": _error_response("The session expired."),
                              **_errors("400", "404", "413"),
                              "507": _error_response("The server's disk is full.")}},
        "delete": {"summary": "Cancel a session", "security": [], "parameters": [SESSION_ID],
                   "responses": {"204": {"description": "Cancelled; partial bytes removed."},
                                 **_errors("404"), "410": _error_response("The session expired.")}},
    },
    "/api/v1/tus/": {
        "options": {"summary": "tus 1.0 capabilities", "security": [],
                    "responses": {"204": {"description": "Tus-Version, Tus-Extension, Tus-Max-Size."}}},
        "post": {"summary": "tus creation: a new upload on the same sessions",
                 "parameters": [{"name": "Tus-Resumable", "in": "header", "required": True,
                                 "schema": {"type": "string", "enum": ["1.0.0"]}},
                                {"name": "Upload-Length", "in": "header", "required": True,
                                 "schema": {"type": "integer", "minimum": 0}},
                                {"name": "Upload-Metadata", "in": "header", "schema": {"type": "string"}}],
                 "responses": {"201": {"description": ("Created; Location is the upload URL. A guest's upload also "
                                                       "gets Lockr-Claim-Token (see File.claimToken)."),
                                       "headers": {"Lockr-Claim-Token": {"schema": CLAIM_TOKEN}}},
                               "412": _error_response("Not tus 1.0.0."), **_errors("400", "401", "403", "413", "429"),
                               "507": _error_response("The server's disk is full.")}},
    },
    "/api/v1/tus/{sessionId}": {
        "options": {"summary": "tus 1.0 capabilities", "security": [], "parameters": [SESSION_ID],
                    "responses": {"204": {"description": "Tus-Version, Tus-Extension, Tus-Max-Size."}}},
        "head": {"summary": "tus offset", "security": [], "parameters": [SESSION_ID, TUS_RESUMABLE],
                 "responses": {"200": {"description": "Upload-Offset and Upload-Length."}, **_errors("404"),
                               "410": {"description": "Expired."}, "412": {"description": "Not tus 1.0.0."}}},
        "patch": {"summary": "tus: append bytes at Upload-Offset", "security": [],
                  "parameters": [SESSION_ID, TUS_RESUMABLE,
                                 {"name": "Upload-Offset", "in": "header", "required": True,
                                  "schema": {"type": "integer", "minimum": 0}}],
                  "requestBody": {"content": {"application/offset+octet-stream": {
                      "schema": {"type": "string", "format": "binary"}}}},
                  "responses": {"204": {"description": "Stored; Upload-Offset is the new offset."},
                                "409": _error_response("Wrong offset or a second writer."),
                                "410": _error_response("Expired."), "412": _error_response("Not tus 1.0.0."),
                                "415": _error_response("Wrong Content-Type."),
                                "460": _error_response("Checksum mismatch."), **_errors("400", "404"),
                                "507": _error_response("The server's disk is full.")}},
        "delete": {"summary": "tus termination", "security": [], "parameters": [SESSION_ID, TUS_RESUMABLE],
                   "responses": {"204": {"description": "Terminated."}, **_errors("404"),
                                 "410": _error_response("Expired."), "412": _error_response("Not tus 1.0.0.")}},
    },
    "/api/v1/tokens": {
        "get": {"summary": "Your API tokens (never the tokens themselves)",
                "responses": {"200": {"description": "The tokens.", "content": {"application/json": {}}},
                              **_errors("401", "429")}},
        "post": {"summary": "Issue a new API token",
                 "requestBody": _json_body({"name": {"type": "string"},
                                            "expiresIn": {"type": "integer", "minimum": 1}}, []),
                 "responses": {"201": _json("Token", "The new token, shown once."), **_errors("400", "401", "429")}},
    },
    "/api/v1/tokens/{tokenId}": {
        "delete": {"summary": "Revoke one of your tokens",
                   "parameters": [{"name": "tokenId", "in": "path", "required": True,
                                   "schema": {"type": "integer", "minimum": 0}}],
                   "responses": {"204": {"description": "Revoked."}, **_errors("401", "404", "429")}},
    },
    "/api/v1/account/password": {
        "post": {"summary": "Change your password",
                 "requestBody": _json_body({"currentPassword": {"type": "string"}, "newPassword": {"type": "string"}},
                                           ["currentPassword", "newPassword"]),
                 "responses": {"204": {"description": "Changed."}, **_errors("400", "401", "403", "429")}},
    },
    "/api/v1/files": {
        "get": {"summary": "List your files",
                "parameters": [{"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1}},
                               {"name": "cursor", "in": "query", "schema": {"type": "string"}}],
                "responses": {"200": _json("FileList", "One page of files."), **_errors("400", "401", "429")}},
    },
    "/api/v1/files/register": {
        "post": {"summary": "Attach a guest upload to your account",
                 "description": ("Needs the claimToken the upload's answer gave the uploader (403 claim_required "
                                 "without it, wrong_claim with another); the id alone, which every share link "
                                 "carries, never suffices. Guest uploads from before claim tokens existed cannot "
                                 "be registered. Registering a file you already own answers it again."),
                 "requestBody": _json_body({"id": {"type": "string", "pattern": "^[0-9a-f]{32}$"},
                                            "claimToken": {"type": "string", "maxLength": 256}}, ["id"]),
                 "responses": {"200": _json("File", "The file, now yours."), **_errors("400", "401", "403", "404", "429")}},
    },
    "/api/v1/files/{id}": {
        "get": {"summary": "One of your files", "parameters": [FILE_ID],
                "responses": {"200": _json("File", "The file."), **_errors("401", "404", "429")}},
        "delete": {"summary": "Delete a file (into the trash)", "parameters": [FILE_ID],
                   "description": ("The file moves to the trash: it leaves listings and downloads at once, keeps "
                                   "its id, bytes and quota charge for the server's trash_retention, and comes back "
                                   "with POST /api/v1/trash/{id}/restore. With trash_retention 0 the delete is final "
                                   "(bytes removed, quota released)."),
                   "responses": {"204": {"description": "Deleted (into the trash)."},
                                 **_errors("401", "404", "429")}},
    },
    "/api/v1/files/{id}/key": {
        "post": {"summary": "Set or clear the file's key", "parameters": [FILE_ID],
                 "requestBody": _json_body({"key": {"type": "string", "nullable": True},
                                            "keyHash": {"type": "string", "pattern": "^[0-9a-fA-F]{64}$",
                                                        "nullable": True}}, []),
                 "responses": {"200": _json("File", "The file."), **_errors("400", "401", "403", "404", "429")}},
    },
    "/api/v1/files/{id}/link": {
        "post": {"summary": "Create a signed download link", "parameters": [FILE_ID],
                 "requestBody": _json_body({"expiresIn": {"type": "integer", "minimum": 1}}, []),
                 "responses": {"201": _json("Link", "The signed link."), **_errors("400", "401", "404", "429")}},
    },
    "/api/v1/trash": {
        "get": {"summary": "List your trash",
                "parameters": [{"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1}},
                               {"name": "cursor", "in": "query", "schema": {"type": "string"}}],
                "responses": {"200": _json("TrashList", "One page of the trash, oldest upload first."),
                              **_errors("400", "401", "429")}},
        "delete": {"summary": "Empty your trash: every file in it is deleted for good",
                   "responses": {"200": _json("TrashEmptied", "How many files and bytes were deleted."),
                                 **_errors("401", "429")}},
    },
    "/api/v1/trash/{id}": {
        "delete": {"summary": "Delete one file in your trash for good", "parameters": [FILE_ID],
                   "responses": {"204": {"description": "Deleted; bytes removed, quota released."},
                                 **_errors("401", "404", "429")}},
    },
    "/api/v1/trash/{id}/restore": {
        "post": {"summary": "Restore a file from your trash", "parameters": [FILE_ID],
                 "description": ("The file comes back with its id, so share links and signed links made before the "
                                 "delete work again. When a live file or folder took its name meanwhile it comes "
                                 "back as 'NAME (restored).EXT' ('(restored 2)', ...): the answer has its name."),
                 "responses": {"200": _json("File", "The restored file."), **_errors("401", "404", "429")}},
    },
    "/api/v1/download/{region}/{id}/{name}": {
        "get": DOWNLOAD,
        "head": {**DOWNLOAD, "summary": "A file's headers (size, ETag) without the bytes"},
    },
}


FILE_LINKS = {
    "GetFile": {"operationId": "getFile", "parameters": {"id": "$response.body#/id"}},
    "SetKey": {"operationId": "setKey", "parameters": {"id": "$response.body#/id"}},
    "CreateLink": {"operationId": "createLink", "parameters": {"id": "$response.body#/id"}},
    "DeleteFile": {"operationId": "deleteFile", "parameters": {"id": "$response.body#/id"}},
}
_OPERATION_IDS = {
    ("/api/v1/files/{id}", "get"): "getFile",
    ("/api/v1/files/{id}", "delete"): "deleteFile",
    ("/api/v1/files/{id}/key", "post"): "setKey",
    ("/api/v1/files/{id}/link", "post"): "createLink",
    ("/api/v1/upload", "post"): "uploadFile",
    ("/api/v1/files/register", "post"): "registerFile",
    ("/api/v1/trash/{id}", "delete"): "deleteFromTrash",
    ("/api/v1/trash/{id}/restore", "post"): "restoreFile",
}
for (_path, _method), _operation_id in _OPERATION_IDS.items():
    PATHS[_path][_method]["operationId"] = _operation_id
# What only an account may call (the document's default also allows guests): a request without
# credentials gets 401, which clients and schemathesis's ignored_auth check can rely on.
ACCOUNT_ONLY = (
    ("/api/v1/account", "get"), ("/api/v1/account/password", "post"),
    ("/api/v1/tokens", "get"), ("/api/v1/tokens", "post"), ("/api/v1/tokens/{tokenId}", "delete"),
    ("/api/v1/files", "get"), ("/api/v1/files/register", "post"), ("/api/v1/files/{id}", "get"),
    ("/api/v1/files/{id}", "delete"), ("/api/v1/files/{id}/key", "post"), ("/api/v1/files/{id}/link", "post"),
    ("/api/v1/trash", "get"), ("/api/v1/trash", "delete"), ("/api/v1/trash/{id}", "delete"),
    ("/api/v1/trash/{id}/restore", "post"),
)
for _path, _method in ACCOUNT_ONLY:
    PATHS[_path][_method]["security"] = [{"bearer": []}, {"basic": []}]
PATHS["/api/v1/upload"]["post"]["responses"]["201"]["links"] = FILE_LINKS
PATHS["/api/v1/upload"]["post"]["responses"]["201"]["headers"] = {"Accept-Idempotency-Key": {
    "description": "ttl=SECONDS: this server honours Idempotency-Key and keeps a key that long.",
    "schema": {"type": "string"}}}
PATHS["/api/v1/files/register"]["post"]["responses"]["200"]["links"] = FILE_LINKS
PATHS["/api/v1/files/{id}/key"]["post"]["responses"]["200"]["links"] = FILE_LINKS
PATHS["/api/v1/trash/{id}/restore"]["post"]["responses"]["200"]["links"] = FILE_LINKS
# A deleted file's id is where the trash operations act.
PATHS["/api/v1/files/{id}"]["delete"]["responses"]["204"]["links"] = {
    "RestoreFile": {"operationId": "restoreFile", "parameters": {"id": "$request.path.id"}},
    "DeleteFromTrash": {"operationId": "deleteFromTrash", "parameters": {"id": "$request.path.id"}},
}


# -- what the handlers validate ------------------------------------------------------------------------
# The document states the same rules the handlers enforce (service.validate_*, names.py, sessions.py), so
# a client or a generated test (schemathesis) knows what is accepted and its requests reach the logic
# behind validation. Kept here, apart from the paths above, so each rule is in one place.
FILE_NAME = {"type": "string", "example": "report.pdf", "pattern": "^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,99}$",
             "description": "A relative name, 'docs/a.pdf' style, at most 1024 UTF-8 bytes (255 per folder or "
                            "file name); no empty, '.' or '..' segments, backslashes, control or bidi "
                            "characters. The pattern is a safe subset."}
KEY_HASH = {"type": "string", "pattern": "^[0-9a-fA-F]{64}$",
            "description": "SHA-256 of the key phrase as 64 hex characters."}
IDEMPOTENCY_KEY = {
    "type": "string", "pattern": '^"[A-Za-z0-9._~-]{1,200}"$', "example": '"8e03978e-40d5-43e8-bc93-6894a57f9324"',
    "description": ("IETF httpapi Idempotency-Key: a quoted string of 1 to 255 printable ASCII characters (a bare "
                    "token is taken too), unique per upload; accounts only (400 for guests). A retry with the same "
                    "key, body (SHA-256 and size) and name within the server's idempotency_ttl (the ttl= of the "
                    "Accept-Idempotency-Key header on every upload answer) answers 201 with the file the first "
                    "request stored; the same key with another request is 422 idempotency_key_reused, a key whose "
                    "first request is still running 409 idempotency_key_in_flight, a key whose file has since been "
                    "deleted 409 idempotency_key_spent. The pattern is a safe subset.")}
REGION_NAME = {"type": "string", "pattern": "^[a-z0-9][a-z0-9-]{0,62}$", "example": "local",
               "description": "One of the server's regions (GET /api/v1/account lists them)."}
MIME_TYPE = {"type": "string", "maxLength": 255, "pattern": "^[!-~]+/[!-~]+$", "example": "application/pdf"}
PASSWORD = {"type": "string", "minLength": 8, "maxLength": 1024, "example": "correct horse battery"}
JSON_FIELD_RULES: dict[tuple[str, str], dict[str, dict[str, Any]]] = {
    ("/api/v1/account", "post"): {
        "username": {"pattern": "^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$", "example": "alice"},
        "email": {"pattern": r"^[^@\s\x00-\x1f\x7f]{1,64}@[^@\s\x00-\x1f\x7f]{1,189}\.[^@\s\x00-\x1f\x7f]{1,60}$",
                  "maxLength": 254, "example": "alice@example.com"},
        "password": PASSWORD},
    ("/api/v1/login", "post"): {
        "identifier": {"pattern": r"\S", "example": "alice", "description": "Username or email."},
        "password": {"example": "correct horse battery"},
        "tokenName": {"type": "string", "maxLength": 100, "example": "laptop",
                      "description": "A label for the new token (default 'login')."}},
    ("/api/v1/upload/session", "post"): {
        "name": FILE_NAME, "size": {"minimum": 0, "example": 10, "description": "Bytes; within the plan and quota."},
        "type": MIME_TYPE, "region": REGION_NAME, "keyHash": KEY_HASH},
    ("/api/v1/tokens", "post"): {"name": {"maxLength": 100, "example": "backup script"},
                                 "expiresIn": {"maximum": 3650 * 86400,  # service.MAX_TOKEN_LIFETIME "example": 2592000,
                                               "description": "Seconds until the token stops working (401 "
                                                              "token_expired), up to ten years; leave it out for "
                                                              "a token that lasts until revoked."}},
    ("/api/v1/account/password", "post"): {"currentPassword": {"example": "correct horse battery"},
                                           "newPassword": PASSWORD},
    ("/api/v1/files/register", "post"): {"id": {"pattern": "^[0-9a-f]{32}$"}},
    ("/api/v1/files/{id}/key", "post"): {"key": {"maxLength": 1024, "example": "a key phrase"}},
    ("/api/v1/files/{id}/link", "post"): {"expiresIn": {"example": 3600,
                                                        "description": "Seconds, up to the server's max_link_lifetime."}},
}
PARAMETER_RULES: dict[tuple[str, str], dict[str, dict[str, Any]]] = {
    ("/api/v1/upload", "post"): {"x-file-name": FILE_NAME, "x-upload-region": REGION_NAME, "x-key-hash": KEY_HASH,
                                 "Idempotency-Key": IDEMPOTENCY_KEY},
    ("/api/v1/upload/session/{sessionId}", "put"): {
        "Content-Range": {"pattern": r"^bytes (\*|[0-9]{1,19}-[0-9]{1,19})/([0-9]{1,19}|\*)$", "example": "bytes */*",
                          "description": "'bytes FIRST-LAST/TOTAL' for a chunk, 'bytes */TOTAL' (or */*) asks "
                                         "what is stored; without it the body is the whole file."}},
    ("/api/v1/upload/session/{sessionId}", "delete"): {},
}
for (_path, _method), _rules in JSON_FIELD_RULES.items():
    _properties = PATHS[_path][_method]["requestBody"]["content"]["application/json"]["schema"]["properties"]
    for _name, _rule in _rules.items():
        _properties[_name] = {**_properties.get(_name, {}), **_rule}
for (_path, _method), _rules in PARAMETER_RULES.items():
    PATHS[_path][_method]["parameters"] = [
        {**parameter, "schema": {**parameter["schema"], **_rules[parameter["name"]]}}
        if parameter["name"] in _rules else parameter for parameter in PATHS[_path][_method]["parameters"]]
# Session and tus ids are 128-bit random hex; tus uploads are the same sessions as the JSON API's.
SESSION_ID["schema"] = {"type": "string", "pattern": "^[0-9a-f]{32}$"}

# Links from the calls that create ids to the calls that use them: clients (and schemathesis's stateful
# tests) learn where an id goes. A session's id is the last part of its uploadUrl, and of the Location of
# a tus creation: '#regex:' (a schemathesis extension of runtime expressions) cuts it out. tus uploads
# are the same sessions as the JSON API's, so either creation links to both sets of operations.
_SESSION_OPERATIONS = {
    ("/api/v1/upload/session/{sessionId}", "put"): "putSession",
    ("/api/v1/upload/session/{sessionId}", "delete"): "cancelSession",
    ("/api/v1/tus/{sessionId}", "head"): "tusOffset",
    ("/api/v1/tus/{sessionId}", "patch"): "tusAppend",
    ("/api/v1/tus/{sessionId}", "delete"): "tusTerminate",
}
for (_path, _method), _operation_id in _SESSION_OPERATIONS.items():
    PATHS[_path][_method]["operationId"] = _operation_id
for _creation, _status, _session_id in (
        (PATHS["/api/v1/upload/session"]["post"], "201", "$response.body#/uploadUrl#regex:([0-9a-f]+)$"),
        (PATHS["/api/v1/tus/"]["post"], "201", "$response.header.Location#regex:([0-9a-f]+)$")):
    _creation["responses"][_status]["links"] = {
        _operation_id[0].upper() + _operation_id[1:]: {"operationId": _operation_id,
                                                       "parameters": {"sessionId": _session_id}}
        for _operation_id in _SESSION_OPERATIONS.values()}
    # A PUT is valid only for the session's size and offset, which generated bytes rarely match: the links
    # say what a client sends first, a status query (308) and a first one-byte chunk.
    _links = _creation["responses"][_status]["links"]
    del _links["PutSession"]
    _links["SessionStatus"] = {"operationId": "putSession", "requestBody": "",
                               "parameters": {"sessionId": _session_id, "header.Content-Range": "bytes */*"}}
    _links["SessionFirstByte"] = {"operationId": "putSession", "requestBody": "x",
                                  "parameters": {"sessionId": _session_id, "header.Content-Range": "bytes 0-0/*"}}
FILE_LINKS["RegisterFile"] = {"operationId": "registerFile", "requestBody": {"id": "$response.body#/id"}}


def openapi_document(server_url: str) -> dict[str, Any]:
    """The whole document; `server_url` is this server's public base URL."""
    return {
        "openapi": "3.0.3",
        "info": {"title": "lockr API (lockr-local)", "version": __version__,
                 "description": "The lockr file-storage API. Errors: {\"error\": {\"code\", \"message\"}}."},
        "servers": [{"url": server_url}],
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"},
                                "basic": {"type": "http", "scheme": "basic"}},
        },
        "security": [{"bearer": []}, {"basic": []}, {}],
        "paths": PATHS,
    }
