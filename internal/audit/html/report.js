// Renders the imdsguard HTML report from the JSON data embedded in the page, a page of rows at a
// time. Everything from the report's input is set with textContent, never parsed as HTML.
"use strict";
(function () {
  var data = JSON.parse(document.getElementById("report-data").textContent);
  var strings = data.strings;
  var severities = ["critical", "high", "medium", "low", "info"];
  var decisionWords = { a: "allow", d: "deny", u: "?" };
  var decisionClasses = { a: "dec-allow", d: "dec-deny", u: "dec-unknown" };
  var layerNames = { p: "cluster-policy", n: "node", i: "instance" };
  var perPage = { namespaces: 50, verdicts: 100, findings: 50 };
  var state = { namespace: "", verdict: "", severity: "", page: { namespaces: 0, verdicts: 0, findings: 0 } };

  function el(tag, className, text) {
    var e = document.createElement(tag);
    if (className) {
      e.className = className;
    }
    if (text !== undefined) {
      e.textContent = String(text);
    }
    return e;
  }

  function cell(tr, text, className) {
    var td = el("td", className, text);
    tr.appendChild(td);
    return td;
  }

  function clear(node) {
    while (node.firstChild) {
      node.removeChild(node.firstChild);
    }
  }

  function namespaceMatches(name) {
    return state.namespace === "" || name.toLowerCase().indexOf(state.namespace) >= 0;
  }

  // pager renders the previous/next buttons of a list and returns the page's bounds.
  function pager(list, total) {
    var nav = document.getElementById(list + "-pager");
    clear(nav);
    var pages = Math.max(1, Math.ceil(total / perPage[list]));
    if (state.page[list] >= pages) {
      state.page[list] = pages - 1;
    }
    var page = state.page[list];
    var lo = page * perPage[list];
    var hi = Math.min(total, lo + perPage[list]);
    if (pages > 1) {
      var prev = el("button", "prev", "previous");
      prev.type = "button";
      prev.disabled = page === 0;
      prev.addEventListener("click", function () { state.page[list]--; render(list); });
      var next = el("button", "next", "next");
      next.type = "button";
      next.disabled = page >= pages - 1;
      next.addEventListener("click", function () { state.page[list]++; render(list); });
      nav.appendChild(prev);
      nav.appendChild(el("span", "page", "page " + (page + 1) + " of " + pages));
      nav.appendChild(next);
    }
    return [lo, hi];
  }

  function status(list, text, count) {
    var p = document.getElementById(list + "-status");
    p.textContent = text;
    p.setAttribute("data-count", String(count));
  }

  function renderNamespaces() {
    var rows = [];
    for (var i = 0; i < data.namespaces.length; i++) {
      if (namespaceMatches(data.namespaces[i].name)) {
        rows.push(data.namespaces[i]);
      }
    }
    rows.sort(function (a, b) { return b.reachable - a.reachable || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0); });
    var bounds = pager("namespaces", rows.length);
    status("namespaces", rows.length + " of " + data.namespaces.length + " namespaces, most reachable exposures first", rows.length);
    var body = document.getElementById("namespaces-body");
    clear(body);
    for (var k = bounds[0]; k < bounds[1]; k++) {
      var ns = rows[k];
      var tr = el("tr");
      cell(tr, ns.name);
      cell(tr, ns.subjects, "num");
      cell(tr, ns.reachable, ns.reachable > 0 ? "num reachable" : "num");
      for (var s = 0; s < severities.length; s++) {
        cell(tr, ns.findings[s], "num");
      }
      cell(tr, ns.control);
      body.appendChild(tr);
    }
  }

  // shown lists the endpoints of a row the verdict filter keeps: credential endpoints always,
  // others only when denied, as the table does.
  function shown(row) {
    var out = [];
    for (var j = 0; j < data.endpoints.length; j++) {
      var reachable = row.c.charAt(5 * j) === "r";
      if (!data.endpoints[j].credentials && reachable) {
        continue;
      }
      if ((state.verdict === "reachable" && !reachable) || (state.verdict === "denied" && reachable)) {
        continue;
      }
      out.push(j);
    }
    return out;
  }

  // header is the trace's first line: "Deployment shop/web pod template", or
  // "Pod shop/web-1 (workload Deployment/web)".
  function header(row) {
    var slash = row.s.indexOf("/");
    var what = row.s.substring(0, slash) + " " + data.namespaces[row.n].name + "/" + row.s.substring(slash + 1);
    if (row.k < 0) {
      return what + " pod template";
    }
    return what + " (workload " + strings[row.k] + ")";
  }

  // source renders where a subject was read, as imdsguard names a place in its input:
  // "FILE: document D (line L), item I".
  function source(o) {
    if (!o) {
      return "";
    }
    var file = strings[o[0]];
    if (o[1] === 0) {
      return file;
    }
    var out = file + ": document " + o[1] + (o[2] > 0 ? " (line " + o[2] + ")" : "");
    return o[3] > 0 ? out + ", item " + o[3] : out;
  }

  // explain renders a row's evaluation trace as imdsguard audit --explain prints it.
  function explain(row) {
    var lines = [header(row), "  labels: " + strings[row.l], "  hostNetwork: " + (row.h ? "true" : "false"), "  source: " + source(row.o)];
    if (row.p) {
      lines.push("  folded into this row: " + row.p.length + (row.p.length === 1 ? " pod: " : " pods: ") + row.p.join(", "));
    }
    var trace = data.traces[row.t];
    for (var j = 0; j < data.endpoints.length; j++) {
      var ep = data.endpoints[j];
      lines.push("", "  " + ep.name + " (" + ep.destination + ", " + ep.role + ")", "    cluster policy:");
      for (var k = 0; k < trace[j].length; k++) {
        lines.push("      " + strings[trace[j][k]]);
      }
      lines.push("    " + strings[row.r[3 * j + 1]], "    " + strings[row.r[3 * j + 2]]);
      if (row.c.charAt(5 * j) === "r") {
        lines.push("    => reachable: no layer denies it");
      } else {
        lines.push("    => denied by the " + layerNames[row.c.charAt(5 * j + 4)] + " layer");
      }
    }
    return lines.join("\n") + "\n";
  }

  function toggleTrace(button, row, last) {
    var open = button.getAttribute("aria-expanded") === "true";
    if (open) {
      last.parentNode.removeChild(last.nextSibling);
      button.setAttribute("aria-expanded", "false");
      return;
    }
    var tr = el("tr", "trace-row");
    var td = el("td");
    td.colSpan = 8;
    td.appendChild(el("pre", "trace", explain(row)));
    tr.appendChild(td);
    last.parentNode.insertBefore(tr, last.nextSibling);
    button.setAttribute("aria-expanded", "true");
  }

  function renderVerdicts() {
    var matches = [];
    var exposures = 0;
    for (var i = 0; i < data.rows.length; i++) {
      var row = data.rows[i];
      if (!namespaceMatches(data.namespaces[row.n].name)) {
        continue;
      }
      var eps = shown(row);
      if (eps.length > 0) {
        matches.push([row, eps]);
        exposures += eps.length;
      }
    }
    var bounds = pager("verdicts", matches.length);
    status("verdicts", matches.length + " subjects, " + exposures + " exposure rows match the filters", exposures);
    var body = document.getElementById("verdicts-body");
    clear(body);
    for (var m = bounds[0]; m < bounds[1]; m++) {
      addSubject(body, matches[m][0], matches[m][1]);
    }
  }

  // addSubject appends a subject's rows, one per endpoint shown; its name opens the trace below
  // its last row.
  function addSubject(body, row, eps) {
    var button = el("button", "subject", row.s);
    button.type = "button";
    button.setAttribute("aria-expanded", "false");
    var last = null;
    for (var k = 0; k < eps.length; k++) {
      var j = eps[k];
      var code = row.c.substr(5 * j, 5);
      var tr = el("tr", k === 0 ? "first" : "");
      if (k === 0) {
        cell(tr, data.namespaces[row.n].name);
        var td = el("td");
        td.appendChild(button);
        if (row.p) {
          td.appendChild(el("span", "folded", " (+" + row.p.length + (row.p.length === 1 ? " pod)" : " pods)")));
        }
        if (row.h) {
          td.appendChild(el("span", "hostnet", " [hostNetwork]"));
        }
        tr.appendChild(td);
      } else {
        cell(tr, "");
        cell(tr, "");
      }
      cell(tr, data.endpoints[j].name);
      cell(tr, code.charAt(0) === "r" ? "reachable" : "denied", code.charAt(0) === "r" ? "reachable" : "denied");
      for (var d = 1; d <= 3; d++) {
        cell(tr, decisionWords[code.charAt(d)], decisionClasses[code.charAt(d)]);
      }
      cell(tr, strings[row.r[3 * j]], "reason");
      body.appendChild(tr);
      last = tr;
    }
    button.addEventListener("click", function () { toggleTrace(button, row, last); });
  }

  function renderFindings() {
    var matches = [];
    for (var i = 0; i < data.findings.length; i++) {
      var f = data.findings[i];
      if (state.severity !== "" && f.severity !== state.severity) {
        continue;
      }
      if (state.namespace !== "" && (f.namespace === "" || !namespaceMatches(f.namespace))) {
        continue;
      }
      matches.push(f);
    }
    var bounds = pager("findings", matches.length);
    status("findings", matches.length + " of " + data.findings.length + " findings match the filters", matches.length);
    var list = document.getElementById("findings-list");
    clear(list);
    list.start = bounds[0] + 1;
    for (var k = bounds[0]; k < bounds[1]; k++) {
      var f2 = matches[k];
      var li = el("li", "finding");
      li.setAttribute("data-severity", f2.severity);
      var head = el("div");
      head.appendChild(el("span", "sev " + f2.severity, f2.severity));
      head.appendChild(document.createTextNode(" " + f2.id + " "));
      head.appendChild(el("span", "message", f2.message));
      li.appendChild(head);
      li.appendChild(el("div", "fix", "fix: " + strings[f2.remediation]));
      if (f2.objects.length > 0) {
        var shownObjects = f2.objects.slice(0, 20).join(", ");
        if (f2.objects.length > 20) {
          shownObjects += " and " + (f2.objects.length - 20) + " more";
        }
        li.appendChild(el("div", "objects", shownObjects));
      }
      list.appendChild(li);
    }
  }

  var renderers = { namespaces: renderNamespaces, verdicts: renderVerdicts, findings: renderFindings };

  function render(list) {
    renderers[list]();
  }

  function renderAll() {
    state.page = { namespaces: 0, verdicts: 0, findings: 0 };
    renderNamespaces();
    renderVerdicts();
    renderFindings();
  }

  var timer = null;
  document.getElementById("filter-namespace").addEventListener("input", function (e) {
    var value = e.target.value.trim().toLowerCase();
    if (timer !== null) {
      clearTimeout(timer);
    }
    timer = setTimeout(function () {
      timer = null;
      state.namespace = value;
      renderAll();
      document.getElementById("filters").setAttribute("data-namespace", value);
    }, 150);
  });
  document.getElementById("filter-verdict").addEventListener("change", function (e) {
    state.verdict = e.target.value;
    renderAll();
  });
  document.getElementById("filter-severity").addEventListener("change", function (e) {
    state.severity = e.target.value;
    renderAll();
  });
  renderAll();
  document.body.setAttribute("data-rendered", "true");
})();
