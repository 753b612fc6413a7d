// Renders the math that pymdownx.arithmatex (generic mode) leaves as \( … \) and \[ … \], with the
// KaTeX files served by the site itself (docs/hooks.py copies them from the npm package).
document$.subscribe(({ body }) => {
  renderMathInElement(body, {
    delimiters: [
      { left: "\\[", right: "\\]", display: true },
      { left: "\\(", right: "\\)", display: false },
    ],
    throwOnError: true,
  });
});
