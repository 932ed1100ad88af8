"""`tinygpt serve`: a small local web page to look at what a run learned, in the browser you have.

The page (one HTML string below, its script and style inline: the machine may have no internet)
streams samples from POST /generate, draws the loss curve from GET /metrics, and shows a heatmap
of every layer's and head's attention over the prompt from POST /attention. The attention
weights are recomputed here on plain NumPy arrays from the GPT's parameters (GPT-2 names,
`transformer.h.{i}.attn.c_attn.weight` stored (in, out)), so a reader sees softmax(QKᵀ/√d_k)
written out once. Standard library http.server only; it binds to 127.0.0.1 unless told otherwise.
Not here: authentication, TLS, several runs at once, or LSTM attention (an LSTM has none).
"""

import csv
import json
import math
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np

from tinygpt.generate import default_prompt, stream_text
from tinygpt.models.gpt import GPT

MAX_PROMPT_CHARS = 10_000  # and at most block_size * 4 characters, whichever is smaller
MAX_NEW_TOKENS = 1000
MAX_BODY_BYTES = 1 << 20  # a request body larger than this is refused unread (413)
SAMPLING_FIELDS = ("prompt", "max_new_tokens", "temperature", "top_k", "top_p", "seed")


class RequestError(ValueError):
    """A bad request: the HTTP status and a JSON body naming the field, the value and what was expected."""

    def __init__(self, status, message, field=None, value=None, expected=None):
        super().__init__(message)
        self.status = status
        self.body = {"error": message, "field": field, "value": value, "expected": expected}


# ---------------------------------------------------------------------------------------------
# Attention weights on plain arrays
# ---------------------------------------------------------------------------------------------


def _layer_norm(x, w, b, eps=1e-5):
    """x: (T, C) -> (T, C), GPT-2's LayerNorm (biased variance)."""
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    out = (x - mean) / np.sqrt(var + eps) * w
    return out if b is None else out + b


def _gelu(x):
    return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


def gpt_forward_arrays(model, ids):
    """ids: (T,) token ids -> (attention (n_layer, n_head, T, T), hidden (T, C) after ln_f).

    The GPT's forward written out on float64 arrays: token + position embedding, then for each
    block x += attn(ln_1(x)) and x += mlp(ln_2(x)). Row t of a head's (T, T) map is how token t
    spreads its attention over tokens 0..t; the causal mask makes every entry above the diagonal 0."""
    cfg = model.config
    p = {name: param.data.astype(np.float64) for name, param in model.named_parameters()}
    get = p.get  # biases are absent when config.bias is False
    ids = np.asarray(ids, dtype=np.int64)
    T, nh, hs = len(ids), cfg.n_head, cfg.n_embd // cfg.n_head
    x = p["transformer.wte.weight"][ids] + p["transformer.wpe.weight"][:T]  # (T, C)
    mask = np.tril(np.ones((T, T), dtype=bool))  # token t may look at tokens 0..t
    maps = []
    for i in range(cfg.n_layer):
        h = f"transformer.h.{i}."
        a = _layer_norm(x, p[h + "ln_1.weight"], get(h + "ln_1.bias"))
        qkv = a @ p[h + "attn.c_attn.weight"] + get(h + "attn.c_attn.bias", 0.0)  # (T, 3C)
        q, k, v = (m.reshape(T, nh, hs).transpose(1, 0, 2) for m in np.split(qkv, 3, axis=-1))  # (nh, T, hs)
        scores = q @ k.transpose(0, 2, 1) / math.sqrt(hs)  # (nh, T, T)
        scores = np.where(mask, scores, -np.inf)
        scores -= scores.max(-1, keepdims=True)
        att = np.exp(scores)
        att /= att.sum(-1, keepdims=True)  # softmax over the keys; exp(-inf) = 0 above the diagonal
        maps.append(att)
        y = (att @ v).transpose(1, 0, 2).reshape(T, cfg.n_embd)  # (nh, T, hs) -> (T, C)
        x = x + y @ p[h + "attn.c_proj.weight"] + get(h + "attn.c_proj.bias", 0.0)
        m = _layer_norm(x, p[h + "ln_2.weight"], get(h + "ln_2.bias"))
        m = _gelu(m @ p[h + "mlp.c_fc.weight"] + get(h + "mlp.c_fc.bias", 0.0))  # (T, 4C)
        x = x + m @ p[h + "mlp.c_proj.weight"] + get(h + "mlp.c_proj.bias", 0.0)
    hidden = _layer_norm(x, p["transformer.ln_f.weight"], get("transformer.ln_f.bias"))
    return np.stack(maps), hidden


# ---------------------------------------------------------------------------------------------
# Checking a request
# ---------------------------------------------------------------------------------------------


def _number(body, name, default, lo, hi=None, integer=False, allow_none=False):
    value = body.get(name, default)
    if value is None and allow_none:
        return None
    kind = "an integer" if integer else "a number"
    bound = f">= {lo}" if hi is None else f"in [{lo}, {hi}]"
    expected = f"{kind} {bound}" + (" or null" if allow_none else "")
    ok_type = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok_type or not lo <= value or (hi is not None and value > hi):
        raise RequestError(400, f"{name} must be {expected}, got {value!r}", name, value, expected)
    return value


def check_request(body, tokenizer, block_size, fields):
    """A parsed JSON body -> dict of checked settings, or a RequestError naming the bad field."""
    if not isinstance(body, dict):
        raise RequestError(400, f"the body must be a JSON object, got {type(body).__name__}",
                           "body", None, "a JSON object")
    unknown = sorted(set(body) - set(fields))
    if unknown:
        raise RequestError(400, f"unknown field {unknown[0]!r}; expected some of {', '.join(fields)}",
                           unknown[0], body[unknown[0]], f"one of {', '.join(fields)}")
    prompt = body.get("prompt", "")
    if not isinstance(prompt, str):
        raise RequestError(400, f"prompt must be a string, got {type(prompt).__name__}", "prompt",
                           prompt, "a string")
    limit = min(block_size * 4, MAX_PROMPT_CHARS)
    if len(prompt) > limit:
        raise RequestError(413, f"prompt has {len(prompt)} characters, more than this model's limit "
                           f"of {limit} (block_size {block_size} x 4, at most {MAX_PROMPT_CHARS})",
                           "prompt", f"{len(prompt)} characters", f"at most {limit} characters")
    out = {"prompt": prompt or default_prompt(tokenizer)}
    if "max_new_tokens" in fields:
        out["max_new_tokens"] = _number(body, "max_new_tokens", 200, 0, MAX_NEW_TOKENS, integer=True)
        out["temperature"] = _number(body, "temperature", 0.8, 0)
        out["top_k"] = _number(body, "top_k", None, 1, integer=True, allow_none=True)
        out["top_p"] = _number(body, "top_p", None, 0, 1, allow_none=True)
        if out["top_p"] == 0:
            raise RequestError(400, "top_p must be in (0, 1] or null, got 0", "top_p", 0,
                               "a number in (0, 1] or null")
        out["seed"] = _number(body, "seed", None, 0, 2 ** 63 - 1, integer=True, allow_none=True)
    try:
        out["ids"] = tokenizer.encode(out["prompt"])
    except ValueError as e:
        raise RequestError(400, f"the prompt cannot be encoded by this model's tokenizer: {e}",
                           "prompt", prompt, "text made of the run's vocabulary") from None
    if not out["ids"]:
        raise RequestError(400, f"the prompt {prompt!r} encodes to no tokens", "prompt", prompt,
                           "at least one known word or character")
    return out


# ---------------------------------------------------------------------------------------------
# The run's loss curve
# ---------------------------------------------------------------------------------------------


def _read_csv(path):
    if not path.is_file():
        return []
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    return [{k: (float(v) if v not in ("", None) else None) for k, v in row.items()} for row in rows]


def read_metrics(run_dir):
    """-> {"evals": metrics.csv rows, "steps": train_steps.csv rows}, values as floats or None."""
    run_dir = Path(run_dir)
    return {"evals": _read_csv(run_dir / "metrics.csv"), "steps": _read_csv(run_dir / "train_steps.csv")}


# ---------------------------------------------------------------------------------------------
# The server
# ---------------------------------------------------------------------------------------------


class Handler(BaseHTTPRequestHandler):
    """One request. self.server carries run, run_dir and model_lock (see make_server)."""

    protocol_version = "HTTP/1.1"  # chunked transfer, for streaming /generate

    def log_message(self, format, *args):  # library code does not print; cli.py says where it serves
        pass

    def _send_json(self, status, obj, close=False):
        data = json.dumps(obj).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(data)

    def _send_bytes(self, data, content_type):
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _not_found(self, method):
        routes = "GET /, /metrics, /loss.png; POST /generate, /attention"
        self._send_json(404, {"error": f"no such page: {method} {self.path}", "field": "path",
                              "value": self.path, "expected": routes})

    def _read_body(self):
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            raise RequestError(400, "Content-Length is not an integer", "Content-Length",
                               self.headers.get("Content-Length"), "an integer") from None
        if length > MAX_BODY_BYTES:
            raise RequestError(413, f"the body is {length} bytes, more than {MAX_BODY_BYTES}", "body",
                               f"{length} bytes", f"at most {MAX_BODY_BYTES} bytes")
        raw = self.rfile.read(length)
        try:
            return json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise RequestError(400, f"the body is not JSON: {e}", "body", raw[:80].decode("utf-8", "replace"),
                               'a JSON object such as {"prompt": "ROMEO:"}') from None

    def do_GET(self):
        path = self.path.split("?", 1)[0]
        if path in ("/", "/index.html"):
            self._send_bytes(PAGE.encode("utf-8"), "text/html; charset=utf-8")
        elif path == "/metrics":
            self._send_json(200, read_metrics(self.server.run_dir))
        elif path == "/loss.png" and (self.server.run_dir / "loss.png").is_file():
            self._send_bytes((self.server.run_dir / "loss.png").read_bytes(), "image/png")
        elif path == "/favicon.ico":  # browsers ask; say "nothing" rather than log a 404
            self.send_response(204)
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif path == "/info":
            run = self.server.run
            self._send_json(200, {"run": str(self.server.run_dir), "step": run.step,
                                  "model": run.config["model"], "attention": isinstance(run.model, GPT)})
        else:
            self._not_found("GET")

    def do_POST(self):
        path = self.path.split("?", 1)[0]
        if path not in ("/generate", "/attention"):
            self.close_connection = True  # the body was not read
            return self._not_found("POST")
        try:
            body = self._read_body()
            run = self.server.run
            block_size = run.config["model"]["block_size"]
            if path == "/attention":
                req = check_request(body, run.tokenizer, block_size, ("prompt",))
                return self._attention(req)
            req = check_request(body, run.tokenizer, block_size, SAMPLING_FIELDS)
            self._generate(req)
        except RequestError as e:
            self._send_json(e.status, e.body, close=e.status == 413)

    def _attention(self, req):
        run = self.server.run
        if not isinstance(run.model, GPT):
            raise RequestError(400, f"this run's model is a {type(run.model).__name__}, which has no "
                               f"attention", "run", str(self.server.run_dir), "a GPT run")
        block_size = run.config["model"]["block_size"]
        ids = req["ids"][-block_size:]  # the model sees at most block_size tokens
        maps, _ = gpt_forward_arrays(run.model, ids)
        tokens = [run.tokenizer.decode([i]) for i in ids]
        self._send_json(200, {"tokens": tokens, "cropped": len(req["ids"]) - len(ids),
                              "attention": maps.round(6).tolist()})  # (n_layer, n_head, T, T)

    def _generate(self, req):
        """Streams newline-delimited JSON, one {"piece": str} per piece, then {"done": true}
        (or {"error": str} if generation fails after the headers went out)."""
        run = self.server.run
        with self.server.model_lock:  # no_grad and the model's mode are process-wide: one at a time
            pieces = stream_text(run.model, run.tokenizer, req["prompt"], req["max_new_tokens"],
                                 req["temperature"], req["top_k"], req["top_p"], req["seed"])
            self.send_response(200)
            self.send_header("Content-Type", "application/x-ndjson; charset=utf-8")
            self.send_header("Transfer-Encoding", "chunked")
            self.send_header("Cache-Control", "no-cache")
            self.end_headers()
            try:
                for piece in pieces:
                    self._chunk({"piece": piece})
                self._chunk({"done": True})
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True
                return
            except Exception as e:  # the status is already sent; say what went wrong in the stream
                self._chunk({"error": f"{type(e).__name__}: {e}"})
            self.wfile.write(b"0\r\n\r\n")

    def _chunk(self, obj):
        data = (json.dumps(obj) + "\n").encode("utf-8")
        self.wfile.write(f"{len(data):x}\r\n".encode("ascii") + data + b"\r\n")
        self.wfile.flush()


def make_server(run_dir, host="127.0.0.1", port=8000):
    """run_dir -> a ThreadingHTTPServer (not yet serving) for that run; port 0 picks a free port,
    found afterwards in server.server_address."""
    from tinygpt.train import load_run

    run = load_run(run_dir)
    if run.config["kind"] != "lm":
        raise ValueError(f"{run_dir} is a {run.config['kind']} run; serve needs a language-model run")
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ValueError(f"port must be an integer in [0, 65535], got {port!r}")
    try:
        server = ThreadingHTTPServer((host, port), Handler)
    except OSError as e:
        raise OSError(e.errno, f"cannot listen on {host}:{port}: {e.strerror}; hint: another "
                      f"program may hold that port, try --port 0 for a free one") from None
    server.daemon_threads = True
    server.run, server.run_dir, server.model_lock = run, Path(run_dir), threading.Lock()
    return server


def serve(run_dir, host="127.0.0.1", port=8000):
    """Serve run_dir until interrupted (Ctrl-C)."""
    server = make_server(run_dir, host, port)
    try:
        server.serve_forever()
    finally:
        server.server_close()


PAGE = r"""<!doctype html>
<html><head><meta charset="utf-8"><title>tinygpt serve</title>
<style>
body{font-family:system-ui,sans-serif;max-width:980px;margin:1em auto;padding:0 1em;color:#222}
textarea{width:100%;height:5em;font-family:monospace}
label{margin-right:1em;font-size:90%} input[type=number]{width:5em}
#out{white-space:pre-wrap;font-family:monospace;background:#f6f6f6;padding:.5em;min-height:3em}
#out b{color:#555;font-weight:normal} .err{color:#b00} section{margin:1.5em 0}
canvas{border:1px solid #ddd}
</style></head><body>
<h1>tinygpt serve</h1><div id="info"></div>
<section><h2>Generate</h2>
<textarea id="prompt">ROMEO:</textarea><br>
<label>max new tokens <input id="max_new_tokens" type="number" value="200" min="0" max="1000"></label>
<label>temperature <input id="temperature" type="number" value="0.8" step="0.1" min="0"></label>
<label>top-k <input id="top_k" type="number" value="200" min="1"></label>
<label>top-p <input id="top_p" type="number" value="" step="0.05" min="0" max="1"></label>
<label>seed <input id="seed" type="number" value="" min="0"></label>
<button id="go">generate</button> <button id="attn">attention</button>
<div id="out"></div></section>
<section><h2>Attention over the prompt</h2>
<label>layer <select id="layer"></select></label><label>head <select id="head"></select></label>
<span id="attnmsg"></span><br><canvas id="heat" width="600" height="600"></canvas></section>
<section><h2>Loss</h2><svg id="loss" width="900" height="300"></svg></section>
<script>
const $ = id => document.getElementById(id);
function num(id){ const v = $(id).value; return v === "" ? null : Number(v); }
function body(){ return {prompt:$("prompt").value, max_new_tokens:num("max_new_tokens"),
  temperature:num("temperature"), top_k:num("top_k"), top_p:num("top_p"), seed:num("seed")}; }
async function generate(){
  const out = $("out"); out.textContent = ""; const p = document.createElement("b");
  p.textContent = $("prompt").value; out.appendChild(p);
  const r = await fetch("/generate", {method:"POST", body:JSON.stringify(body())});
  if(!r.ok){ const e = await r.json(); out.innerHTML = '<span class="err"></span>';
    out.firstChild.textContent = r.status + ": " + e.error; return; }
  const reader = r.body.getReader(), dec = new TextDecoder(); let buf = "";
  for(;;){ const {value, done} = await reader.read(); if(done) break;
    buf += dec.decode(value, {stream:true}); let i;
    while((i = buf.indexOf("\n")) >= 0){ const m = JSON.parse(buf.slice(0, i)); buf = buf.slice(i + 1);
      if(m.piece !== undefined) out.appendChild(document.createTextNode(m.piece));
      if(m.error) out.appendChild(document.createTextNode("\n[error] " + m.error)); } }
  attention();
}
let A = null;
async function attention(){
  const r = await fetch("/attention", {method:"POST", body:JSON.stringify({prompt:$("prompt").value})});
  const j = await r.json();
  if(!r.ok){ $("attnmsg").textContent = r.status + ": " + j.error; return; }
  $("attnmsg").textContent = j.cropped ? ("(first " + j.cropped + " tokens cropped)") : "";
  A = j; for(const [id, n] of [["layer", j.attention.length], ["head", j.attention[0].length]]){
    const s = $(id), keep = Math.min(s.selectedIndex < 0 ? 0 : s.selectedIndex, n - 1); s.innerHTML = "";
    for(let k = 0; k < n; k++){ const o = document.createElement("option"); o.value = k; o.textContent = k; s.appendChild(o); }
    s.selectedIndex = keep; }
  draw();
}
function show(t){ return JSON.stringify(t).slice(1, -1).replace(/ /g, "\u2423").slice(0, 8); }  // a space shows as ␣
function draw(){
  if(!A) return; const M = A.attention[$("layer").selectedIndex][$("head").selectedIndex];
  const T = A.tokens.length, c = $("heat"), g = c.getContext("2d"), pad = 70;
  const cell = Math.max(4, Math.min(40, Math.floor((c.width - pad) / T)));
  g.clearRect(0, 0, c.width, c.height); g.font = "11px monospace"; g.fillStyle = "#000";
  for(let i = 0; i < T; i++) for(let j = 0; j < T; j++){
    const w = M[i][j], v = Math.round(255 * (1 - w));
    g.fillStyle = "rgb(" + v + "," + v + ",255)"; g.fillRect(pad + j * cell, pad + i * cell, cell, cell); }
  g.fillStyle = "#000";
  for(let i = 0; i < T; i++){ g.fillText(show(A.tokens[i]), 2, pad + i * cell + cell * 0.7);  // query rows
    g.save(); g.translate(pad + i * cell + cell * 0.7, pad - 4); g.rotate(-Math.PI / 2);
    g.fillText(show(A.tokens[i]), 0, 0); g.restore(); }                                      // key columns
}
async function loss(){
  const j = await (await fetch("/metrics")).json(), svg = $("loss"), W = 900, H = 300, m = 40;
  const series = [["steps", "loss", "#9ab"], ["evals", "train_loss", "#05a"], ["evals", "val_loss", "#d40"]];
  const pts = series.map(([t, k]) => j[t].filter(r => r[k] !== null).map(r => [r.step, r[k]]));
  const all = pts.flat(); if(!all.length){ svg.outerHTML = "<p>no metrics yet</p>"; return; }
  const xs = all.map(p => p[0]), ys = all.map(p => p[1]);
  const x0 = Math.min(...xs), x1 = Math.max(...xs) || 1, y0 = Math.min(...ys), y1 = Math.max(...ys);
  const X = x => m + (W - 2 * m) * (x - x0) / ((x1 - x0) || 1), Y = y => H - m - (H - 2 * m) * (y - y0) / ((y1 - y0) || 1);
  let s = '<line x1="' + m + '" y1="' + (H - m) + '" x2="' + (W - m) + '" y2="' + (H - m) + '" stroke="#888"/>';
  s += '<text x="' + m + '" y="' + (H - 10) + '">step ' + x0 + '</text><text x="' + (W - m - 60) + '" y="' + (H - 10) + '">' + x1 + '</text>';
  s += '<text x="2" y="' + (m - 10) + '">' + y1.toFixed(3) + '</text><text x="2" y="' + (H - m) + '">' + y0.toFixed(3) + '</text>';
  pts.forEach((p, k) => { if(p.length) s += '<polyline fill="none" stroke-width="1.5" stroke="' + series[k][2] +
    '" points="' + p.map(q => X(q[0]) + "," + Y(q[1])).join(" ") + '"/>' +
    '<text x="' + (W - m - 120) + '" y="' + (m + 15 * k) + '" fill="' + series[k][2] + '">' + series[k][1] + '</text>'; });
  svg.innerHTML = s;
}
fetch("/info").then(r => r.json()).then(j => { $("info").textContent = j.run + " (step " + j.step + ", " +
  JSON.stringify(j.model) + ")"; if(!j.attention) $("attn").disabled = true; });
$("go").onclick = generate; $("attn").onclick = attention; $("layer").onchange = draw; $("head").onchange = draw;
loss();
</script></body></html>
"""
