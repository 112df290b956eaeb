// Keeps a page current without a full reload: every data-refresh seconds the page is
// fetched again and its <main> swapped in place (scroll position and focus are kept).
// When the session has expired the fetch lands on the sign-in page: reload to show it.
(function () {
  "use strict";
  const main = document.getElementById("main");
  const seconds = Number(main && main.dataset.refresh);
  if (!seconds) return;

  async function refresh() {
    const active = document.activeElement;
    if (document.hidden || (active && active.tagName === "INPUT")) return;
    let response;
    try {
      response = await fetch(window.location.href, {credentials: "same-origin"});
    } catch (err) {
      return; // the appliance is restarting: try again next time
    }
    if (!response.ok) return;
    const doc = new DOMParser().parseFromString(await response.text(), "text/html");
    const fresh = doc.getElementById("main");
    if (!fresh || response.redirected) {
      window.location.reload();
      return;
    }
    document.getElementById("main").replaceChildren(...fresh.childNodes);
    const footer = doc.querySelector("footer");
    if (footer) document.querySelector("footer").replaceChildren(...footer.childNodes);
  }

  window.setInterval(refresh, seconds * 1000);
})();
