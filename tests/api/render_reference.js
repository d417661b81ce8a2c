// Run api/static/reference.js against an OpenAPI document with a minimal fake DOM (no browser needed);
// prints the rendered text. Usage: node render_reference.js reference.js openapi.json
const fs = require("fs");
const [script, specPath] = process.argv.slice(2);
function Node(tag) {
  return { tag, attrs: {}, children: [], _text: "",
    setAttribute(k, v) { this.attrs[k] = v; },
    appendChild(c) { this.children.push(c); return c; },
    set textContent(v) { this._text = String(v); this.children = []; },
    get textContent() { return this._text + this.children.map(c => c.textContent).join(" "); } };
}
const ids = {};
global.document = {
  createElement: (t) => Node(t),
  createTextNode: (t) => { const n = Node("#text"); n._text = t; return n; },
  getElementById: (id) => (ids[id] = ids[id] || Node("div")),
};
const spec = JSON.parse(fs.readFileSync(specPath, "utf8"));
global.fetch = (url) => Promise.resolve({ json: () => Promise.resolve(spec), url });
eval(fs.readFileSync(script, "utf8"));
setTimeout(() => {
  process.stdout.write(JSON.stringify({ title: ids.title.textContent, content: ids.content.textContent,
                                        nav: ids.nav.textContent }));
}, 50);
