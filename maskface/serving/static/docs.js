// Renders /api/v1/openapi.json as plain HTML (a local, dependency-free stand-in for Swagger UI).
(function () {
  "use strict";
  var root = document.getElementById("api-docs");

  function el(tag, text, cls) {
    var e = document.createElement(tag);
    if (text !== undefined && text !== null) { e.textContent = text; }
    if (cls) { e.className = cls; }
    return e;
  }

  function typeOf(s) {
    if (!s) { return ""; }
    if (s.$ref) { return s.$ref.split("/").pop(); }
    var t = s.type || "";
    if (t === "array" && s.items) { t = typeOf(s.items) + "[]"; }
    if (s.format) { t += " (" + s.format + ")"; }
    if (s.nullable) { t += " | null"; }
    return t;
  }

  function range(s) {
    var parts = [];
    if (s.minimum !== undefined) { parts.push("min " + s.minimum); }
    if (s.maximum !== undefined) { parts.push("max " + s.maximum); }
    if (s.enum) { parts.push("one of " + s.enum.join(", ")); }
    if (s.default !== undefined) { parts.push("default " + s.default); }
    return parts.join(", ");
  }

  function fieldTable(rows) {
    var t = el("table", null, "fields");
    var head = el("tr");
    ["name", "in", "type", "required", "limits", "description"].forEach(function (h) { head.appendChild(el("th", h)); });
    t.appendChild(head);
    rows.forEach(function (r) {
      var tr = el("tr");
      [r.name, r.in, typeOf(r.schema), r.required ? "yes" : "", range(r.schema || {}), r.description || ""]
        .forEach(function (v) { tr.appendChild(el("td", v)); });
      t.appendChild(tr);
    });
    return t;
  }

  function renderOperation(path, method, op) {
    var box = el("section", null, "endpoint");
    var h = el("h3");
    h.appendChild(el("span", method.toUpperCase(), "method " + method));
    h.appendChild(el("code", path));
    box.appendChild(h);
    box.appendChild(el("p", op.summary));
    if (op.description) { box.appendChild(el("p", op.description, "desc")); }
    var rows = (op.parameters || []).map(function (p) {
      return { name: p.name, in: p.in, schema: p.schema, required: p.required, description: p.description };
    });
    var content = op.requestBody && op.requestBody.content;
    Object.keys(content || {}).forEach(function (mime) {
      var s = content[mime].schema || {};
      var req = s.required || [];
      Object.keys(s.properties || {}).forEach(function (name) {
        var p = s.properties[name];
        rows.push({ name: name, in: mime, schema: p, required: req.indexOf(name) >= 0, description: p.description });
      });
    });
    if (rows.length) { box.appendChild(fieldTable(rows)); }
    var ul = el("ul", null, "responses");
    Object.keys(op.responses || {}).forEach(function (code) {
      var r = op.responses[code];
      var schema = r.content && r.content["application/json"] && r.content["application/json"].schema;
      ul.appendChild(el("li", code + ": " + r.description + (schema ? " → " + typeOf(schema) : "")));
    });
    box.appendChild(ul);
    return box;
  }

  fetch(root.getAttribute("data-spec-url"))
    .then(function (r) { return r.json(); })
    .then(function (spec) {
      document.getElementById("api-title").textContent = spec.info.title + " " + spec.info.version;
      document.getElementById("api-description").textContent = spec.info.description;
      var endpoints = document.getElementById("endpoints");
      Object.keys(spec.paths).forEach(function (path) {
        Object.keys(spec.paths[path]).forEach(function (method) {
          endpoints.appendChild(renderOperation(path, method, spec.paths[path][method]));
        });
      });
      var schemas = document.getElementById("schemas");
      var all = (spec.components && spec.components.schemas) || {};
      Object.keys(all).forEach(function (name) {
        var d = el("details");
        d.appendChild(el("summary", name));
        d.appendChild(el("pre", JSON.stringify(all[name], null, 2)));
        schemas.appendChild(d);
      });
    })
    .catch(function (err) { root.insertBefore(el("p", "Could not load the spec: " + err, "error"), root.firstChild); });
})();
