// The dashboard's one script (the Content-Security-Policy allows no inline script): draws the Plotly charts
// whose JSON the pages carry in data-figure, submits the filter bar's selects on change, and starts Swagger UI
// on /docs.
(function () {
  "use strict";

  function charts() {
    document.querySelectorAll("div.km-chart[data-figure]").forEach(function (el) {
      var fig = JSON.parse(el.getAttribute("data-figure"));
      var config = JSON.parse(el.getAttribute("data-config") || "{}");
      window.Plotly.newPlot(el, fig.data || [], fig.layout || {}, config);
    });
  }

  function autosubmit() {
    document.querySelectorAll("select[data-autosubmit]").forEach(function (select) {
      select.addEventListener("change", function () { select.form.submit(); });
    });
  }

  function docs() {
    var root = document.getElementById("swagger-ui");
    if (!root || !window.SwaggerUIBundle) { return; }
    window.ui = window.SwaggerUIBundle({
      url: root.getAttribute("data-openapi") || "/openapi.json",
      dom_id: "#swagger-ui",
      deepLinking: true,
      presets: [window.SwaggerUIBundle.presets.apis],
      layout: "BaseLayout",
    });
  }

  function start() {
    if (window.Plotly) { charts(); }
    autosubmit();
    docs();
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
