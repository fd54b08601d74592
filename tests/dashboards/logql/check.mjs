// Reads a JSON list of LogQL queries on stdin; prints a JSON list of {query, error} for those
// that Grafana's LogQL grammar (the parser behind Grafana's Loki query editor) cannot parse.
import { parser } from "@grafana/lezer-logql";

const input = await new Promise((resolve) => {
  let text = "";
  process.stdin.on("data", (chunk) => (text += chunk));
  process.stdin.on("end", () => resolve(text));
});
const problems = [];
for (const query of JSON.parse(input)) {
  const tree = parser.parse(query);
  let error = null;
  tree.iterate({
    enter(node) {
      if (node.type.isError && error === null) {
        error = `syntax error at ${node.from}: ${JSON.stringify(query.slice(Math.max(0, node.from - 10), node.from + 10))}`;
      }
    },
  });
  if (error !== null) problems.push({ query, error });
}
process.stdout.write(JSON.stringify(problems));
