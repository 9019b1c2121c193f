// Starts Swagger UI on /docs. A file of its own: the page's CSP allows no inline script.
const root = document.getElementById("swagger-ui");
window.SwaggerUIBundle({
  url: root.dataset.specUrl,
  domNode: root,
  deepLinking: true,
  presets: [window.SwaggerUIBundle.presets.apis],
  layout: "BaseLayout",
  persistAuthorization: false,
  tryItOutEnabled: false,
});
