// The REST API page's pure parts: grouping the document's operations, the body's fields.
import "./i18n_setup.js";
import test from "node:test";
import assert from "node:assert/strict";
import { fieldRows, groups, typeName } from "../../server/static/api_docs.js";

const doc = {
  paths: {
    "/api/patients": { get: { tags: ["patients"], summary: "List" }, post: { tags: ["patients"], summary: "Add" } },
    "/api/consultations/{cid}/end": { post: { tags: ["consultations"], summary: "End" } },
    "/healthz": { get: { summary: "Health" } },
  },
  components: {
    schemas: {
      Order: {
        type: "object",
        properties: {
          reason: { type: "string" },
          experts: { type: "array", items: { type: "string" } },
          start: { anyOf: [{ type: "string" }, { type: "null" }] },
          urgency: { $ref: "#/components/schemas/Urgency" },
        },
        required: ["reason"],
      },
      Urgency: { enum: ["routine", "urgent"] },
    },
  },
};

test("operations are grouped by tag, groups and paths sorted, methods in order", () => {
  const found = groups(doc);
  assert.deepEqual(found.map(([tag]) => tag), ["api", "consultations", "patients"]);
  const patients = found[2][1];
  assert.deepEqual(patients.map((e) => e.method), ["get", "post"]);
  assert.equal(found[0][1][0].path, "/healthz");
});

test("a body's fields follow the $ref and name their types and whether required", () => {
  const rows = fieldRows(doc, { $ref: "#/components/schemas/Order" });
  assert.deepEqual(rows.map((r) => r[0]), ["reason", "experts", "start", "urgency"]);
  assert.deepEqual(rows.map((r) => r[1]), ["string", "string[]", "string | null", "Urgency"]);
  assert.equal(rows[0][2], "required");
  assert.equal(rows[1][2], "optional");
  assert.equal(typeName(doc, { enum: ["a", "b"] }), "a | b");
  assert.deepEqual(fieldRows(doc, { $ref: "#/components/schemas/Missing" }), []);
});
