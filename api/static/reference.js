// cat-prom API reference: renders /v1/openapi.json with plain DOM code (no network beyond this server).
(function () {
  "use strict";
  var spec;
  function el(tag, attrs, children) {
    var e = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === "text") e.textContent = attrs[k]; else e.setAttribute(k, attrs[k]);
    });
    (children || []).forEach(function (c) { if (c) e.appendChild(typeof c === "string" ? document.createTextNode(c) : c); });
    return e;
  }
  function resolve(s) {
    var seen = 0;
    while (s && s.$ref && seen++ < 20) {
      var path = s.$ref.replace(/^#\//, "").split("/");
      s = path.reduce(function (o, p) { return o && o[p]; }, spec);
    }
    return s || {};
  }
  function refName(s) { return s && s.$ref ? s.$ref.split("/").pop() : null; }
  function typeOf(s) {
    var name = refName(s);
    if (name) return name;
    s = s || {};
    if (s.type === "array") return typeOf(s.items) + "[]";
    if (s.oneOf) return s.oneOf.map(typeOf).join(" | ");
    return s.type || "any";
  }
  function schemaTable(s) {
    var name = refName(s);
    s = resolve(s);
    if (s.type === "array") return el("div", {}, [el("p", {text: "Array of " + typeOf(s.items)}), schemaTable(s.items)]);
    var props = s.properties || {};
    var req = s.required || [];
    var rows = Object.keys(props).map(function (p) {
      var ps = props[p];
      var inner = resolve(ps);
      var link = refName(ps) || refName(ps.items || {});
      var typeCell = link ? el("a", {href: "#schema-" + link, text: typeOf(ps)}) : el("span", {text: typeOf(ps)});
      return el("tr", {}, [el("td", {}, [el("code", {text: p})]), el("td", {}, [typeCell]),
        el("td", {text: req.indexOf(p) >= 0 ? "required" : ""}),
        el("td", {text: (ps.description || inner.description || "") + (inner.enum ? " One of: " + inner.enum.join(", ") : "")})]);
    });
    if (!rows.length) return el("p", {class: "muted", text: name ? "See " + name : "(free-form object)"});
    return el("table", {}, [el("tr", {}, [el("th", {text: "field"}), el("th", {text: "type"}), el("th", {text: ""}), el("th", {text: "description"})])].concat(rows));
  }
  function bodySchema(content) {
    if (!content) return null;
    var key = Object.keys(content)[0];
    return key ? {type: key, schema: content[key].schema} : null;
  }
  function renderOp(path, method, op) {
    var id = (method + path).replace(/[^A-Za-z0-9]+/g, "-");
    var box = el("section", {class: "op", id: id}, [
      el("h3", {}, [el("span", {class: "method " + method, text: method}), el("code", {text: path})]),
      op.summary ? el("p", {text: op.summary}) : null,
      op.description ? el("p", {class: "muted", text: op.description}) : null,
      op.security && op.security.length === 0 ? el("p", {class: "roles", text: "No API key needed."}) : null
    ]);
    var params = op.parameters || [];
    if (params.length) {
      box.appendChild(el("h4", {text: "Parameters"}));
      box.appendChild(el("table", {}, params.map(function (p) {
        p = resolve(p);
        return el("tr", {}, [el("td", {}, [el("code", {text: p.name})]), el("td", {text: p.in}),
          el("td", {text: typeOf(p.schema)}), el("td", {text: p.required ? "required" : ""})]);
      })));
    }
    if (op.requestBody) {
      var b = bodySchema(resolve(op.requestBody).content);
      if (b) { box.appendChild(el("h4", {text: "Request body (" + b.type + ")"})); box.appendChild(schemaTable(b.schema)); }
    }
    box.appendChild(el("h4", {text: "Responses"}));
    var resps = op.responses || {};
    box.appendChild(el("table", {}, Object.keys(resps).map(function (code) {
      var r = resolve(resps[code]);
      var b = bodySchema(r.content);
      var name = b && (refName(b.schema) || (b.schema && typeOf(b.schema)));
      return el("tr", {}, [el("td", {}, [el("code", {text: code})]), el("td", {text: r.description || ""}),
        el("td", {}, [b ? el("a", {href: "#schema-" + (refName(b.schema) || ""), text: (name || "") + " (" + b.type + ")"}) : el("span")])]);
    })));
    return box;
  }
  function render() {
    document.getElementById("title").textContent = (spec.info.title || "API") + " " + (spec.info.version || "");
    document.getElementById("subtitle").textContent = spec.info.description || "";
    var content = document.getElementById("content"), nav = document.getElementById("nav");
    content.textContent = ""; nav.textContent = "";
    var byTag = {};
    Object.keys(spec.paths || {}).forEach(function (path) {
      Object.keys(spec.paths[path]).forEach(function (method) {
        if (["get", "post", "put", "patch", "delete"].indexOf(method) < 0) return;
        var op = spec.paths[path][method];
        var tag = (op.tags && op.tags[0]) || "other";
        (byTag[tag] = byTag[tag] || []).push([path, method, op]);
      });
    });
    var tagDesc = {};
    (spec.tags || []).forEach(function (t) { tagDesc[t.name] = t.description; });
    Object.keys(byTag).forEach(function (tag) {
      nav.appendChild(el("h3", {text: tag}));
      content.appendChild(el("h2", {id: "tag-" + tag, text: tag}));
      if (tagDesc[tag]) content.appendChild(el("p", {class: "muted", text: tagDesc[tag]}));
      byTag[tag].forEach(function (t) {
        var box = renderOp(t[0], t[1], t[2]);
        content.appendChild(box);
        nav.appendChild(el("a", {href: "#" + box.id}, [el("span", {class: "method " + t[1], text: t[1]}), t[0]]));
      });
    });
    var schemas = (spec.components && spec.components.schemas) || {};
    nav.appendChild(el("h3", {text: "Schemas"}));
    content.appendChild(el("h2", {text: "Schemas"}));
    Object.keys(schemas).sort().forEach(function (name) {
      nav.appendChild(el("a", {href: "#schema-" + name, text: name}));
      content.appendChild(el("section", {class: "op", id: "schema-" + name}, [el("h3", {text: name}),
        schemas[name].description ? el("p", {class: "muted", text: schemas[name].description}) : null,
        schemaTable({$ref: "#/components/schemas/" + name})]));
    });
    content.appendChild(el("h2", {text: "Raw document"}));
    content.appendChild(el("p", {}, [el("a", {href: "/v1/openapi.json", text: "/v1/openapi.json"})]));
  }
  fetch("/v1/openapi.json").then(function (r) { return r.json(); }).then(function (s) { spec = s; render(); })
    .catch(function (e) { document.getElementById("content").textContent = "Could not load /v1/openapi.json: " + e; });
})();
