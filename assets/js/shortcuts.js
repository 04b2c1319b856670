() => {
  // Keyboard-first voting and editing. Runs once when the page loads (Gradio launch(js=...)).
  // Compare tab: 1 = A better, 2 = B better, 3 = tie, 4 = both bad, space = skip,
  // Esc = cut the pair being written short (keep what it wrote).
  // Edit tab: Ctrl/Cmd+Enter submits the edit, n (outside a text box) asks for the next input.
  if (window.__promptoptShortcuts) return;
  window.__promptoptShortcuts = true;

  const visible = (el) => !!el && el.offsetParent !== null && !el.disabled;
  const clickIfVisible = (id) => {
    const el = document.getElementById(id);
    const button = el && el.tagName === "BUTTON" ? el : el && el.querySelector("button");
    if (visible(button)) {
      button.click();
      return true;
    }
    return false;
  };
  const typing = (el) =>
    !!el &&
    (el.tagName === "TEXTAREA" ||
      (el.tagName === "INPUT" && !["checkbox", "radio", "button"].includes(el.type)) ||
      el.isContentEditable);

  const voteKeys = {
    "1": "vote-a",
    "2": "vote-b",
    "3": "vote-tie",
    "4": "vote-bad",
    " ": "vote-skip",
    Escape: "compare-stop",
  };

  document.addEventListener("keydown", (event) => {
    if ((event.ctrlKey || event.metaKey) && event.key === "Enter") {
      if (clickIfVisible("edit-submit")) event.preventDefault();
      return;
    }
    if (event.ctrlKey || event.metaKey || event.altKey || typing(document.activeElement)) return;
    const target = voteKeys[event.key];
    if (target) {
      if (clickIfVisible(target)) event.preventDefault();
      return;
    }
    if (event.key === "n" && clickIfVisible("edit-next")) event.preventDefault();
  });
}
