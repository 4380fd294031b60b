import { readFileSync } from "node:fs";
import { setCatalogue } from "../../server/static/i18n.js";

const en = JSON.parse(readFileSync(new URL("../../server/static/i18n/en.json", import.meta.url), "utf8"));
setCatalogue("en", en);
