// The advisor page: asks the agent chat API (which keeps the thread) or the advisor endpoint, and streams
// the answer with the tool calls it made. Loaded from /static: the pages' CSP allows no inline script.
const form = document.getElementById("ask");
const csrf = form.dataset.csrf;
const useAgent = form.dataset.agent === "true";
let threadId = null;
const thread = document.getElementById("thread");
document.querySelectorAll(".example").forEach(b => b.addEventListener("click", () => { document.getElementById("q").value = b.textContent; }));
document.getElementById("ask").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const q = document.getElementById("q").value;
  const card = document.createElement("div"); card.className = "card";
  const h = document.createElement("p"); h.innerHTML = "<strong>You:</strong> "; h.append(q); card.append(h);
  const calls = document.createElement("details"); calls.innerHTML = "<summary>Tool calls and data used</summary>"; card.append(calls);
  const ans = document.createElement("p"); ans.style.whiteSpace = "pre-wrap"; card.append(ans);
  thread.prepend(card);
  const url = useAgent ? "/v1/agents/advisor/chat" : "/v1/advisor/ask";
  const payload = useAgent ? {message: q, thread_id: threadId} : {question: q};
  const resp = await fetch(url, {method: "POST", headers: {"content-type": "application/json", "x-csrf-token": csrf}, body: JSON.stringify(payload)});
  if (!resp.ok) { ans.textContent = "Error: " + (await resp.text()); return; }
  const reader = resp.body.getReader(); const dec = new TextDecoder(); let buf = "";
  for (;;) {
    const {value, done} = await reader.read(); if (done) break;
    buf += dec.decode(value, {stream: true});
    let i;
    while ((i = buf.indexOf("\n\n")) >= 0) {
      const chunk = buf.slice(0, i); buf = buf.slice(i + 2);
      const name = (chunk.match(/^event: (.*)$/m) || [])[1]; const data = JSON.parse((chunk.match(/^data: (.*)$/m) || [])[1] || "{}");
      if (name === "tool_call") { const p = document.createElement("pre"); p.textContent = "→ " + data.tool + " " + JSON.stringify(data.args); calls.append(p); }
      else if (name === "tool_result") { const p = document.createElement("pre"); p.style.maxHeight = "12rem"; p.style.overflow = "auto"; p.textContent = "← " + data.tool + " " + JSON.stringify(data.data || data.error).slice(0, 4000); calls.append(p); }
      else if (name === "token") { ans.textContent += data.text; }
      else if (name === "done" && data.thread_id) { threadId = data.thread_id; }
      else if (name === "error") { ans.textContent += " [error: " + data.detail + "]"; }
    }
  }
});
