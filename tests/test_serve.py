"""tinygpt serve through a real server on port 0: streaming, attention, errors, concurrency."""

import json
import os
import shutil
import threading
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from tinygpt.cli import main
from tinygpt.generate import stream_text
from tinygpt.serve import gpt_forward_arrays, make_server

TEXT = "".join(f"line {i}: to be, or not to be, that is the question.\n" for i in range(150))
TINY = ["--n-layer", "2", "--n-head", "2", "--n-embd", "16", "--block-size", "16", "--batch-size", "4",
        "--eval-iters", "2", "--steps", "6", "--eval-interval", "3", "--sample-tokens", "5"]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("serve")
    (root / "text.txt").write_text(TEXT, encoding="utf-8")
    assert main(["train", "--data", str(root / "text.txt"), "--out-dir", str(root / "run"), *TINY]) == 0
    srv = make_server(root / "run", "127.0.0.1", 0)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def url(srv, path):
    host, port = srv.server_address[:2]
    return f"http://{host}:{port}{path}"


def post(srv, path, body):
    data = body if isinstance(body, bytes) else json.dumps(body).encode("utf-8")
    req = urllib.request.Request(url(srv, path), data=data, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, r.read().decode("utf-8")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode("utf-8")


def generated_pieces(text):
    lines = [json.loads(line) for line in text.splitlines()]
    assert lines[-1] == {"done": True}
    return [m["piece"] for m in lines[:-1]]


def test_serve_generate_streams_the_pieces_of_stream_text(server):
    settings = {"prompt": "to be", "max_new_tokens": 30, "temperature": 1.0, "top_k": 5, "top_p": 0.9, "seed": 3}
    status, text = post(server, "/generate", settings)
    assert status == 200
    run = server.run
    expected = list(stream_text(run.model, run.tokenizer, "to be", 30, 1.0, 5, 0.9, 3))
    assert "".join(generated_pieces(text)) == "".join(expected)
    assert len(generated_pieces(text)) > 1


def test_serve_generate_is_chunked(server):
    req = urllib.request.Request(url(server, "/generate"), method="POST",
                                 data=json.dumps({"prompt": "to", "max_new_tokens": 5, "seed": 1}).encode())
    with urllib.request.urlopen(req, timeout=60) as r:
        assert r.headers["Transfer-Encoding"] == "chunked"
        assert r.readline()  # the first piece arrives on its own line


def numpy_attention(x, w, b, n_head):
    """The oracle: for a (T, C) input to a layer's attention, softmax(QKᵀ/√d_k) with the causal
    mask, one head at a time with explicit loops over rows."""
    T, C = x.shape
    hs = C // n_head
    q, k = (x @ w + b)[:, :C], (x @ w + b)[:, C:2 * C]
    out = np.zeros((n_head, T, T))
    for h in range(n_head):
        qh, kh = q[:, h * hs:(h + 1) * hs], k[:, h * hs:(h + 1) * hs]
        for t in range(T):
            s = np.array([qh[t] @ kh[j] / np.sqrt(hs) for j in range(t + 1)])
            e = np.exp(s - s.max())
            out[h, t, :t + 1] = e / e.sum()
    return out


def test_serve_attention_rows_are_causal_distributions_equal_to_numpy(server):
    status, text = post(server, "/attention", {"prompt": "to be or not"})
    assert status == 200
    body = json.loads(text)
    att = np.array(body["attention"])  # (n_layer, n_head, T, T)
    run = server.run
    ids = run.tokenizer.encode("to be or not")
    assert att.shape == (2, 2, len(ids), len(ids))
    assert "".join(body["tokens"]) == "to be or not"
    np.testing.assert_allclose(att.sum(-1), 1.0, atol=1e-5)
    assert np.all(np.triu(att, k=1) == 0)
    # layer 0 from the raw parameters, with the oracle above
    p = {n: v.data.astype(np.float64) for n, v in run.model.named_parameters()}
    x = p["transformer.wte.weight"][ids] + p["transformer.wpe.weight"][:len(ids)]
    mu, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
    a = (x - mu) / np.sqrt(var + 1e-5) * p["transformer.h.0.ln_1.weight"] + p["transformer.h.0.ln_1.bias"]
    expected = numpy_attention(a, p["transformer.h.0.attn.c_attn.weight"], p["transformer.h.0.attn.c_attn.bias"], 2)
    np.testing.assert_allclose(att[0], expected, atol=1e-5)


def test_serve_forward_arrays_reproduce_the_models_logits(server):
    """The later layers' maps are only right if the residual stream is: check it ends where GPT does."""
    run = server.run
    ids = run.tokenizer.encode("or not to be")
    _, hidden = gpt_forward_arrays(run.model, ids)
    logits, _ = run.model(np.array([ids]))
    wte = run.model.transformer.wte.weight.data.astype(np.float64)
    np.testing.assert_allclose(hidden @ wte.T, logits.data[0], atol=1e-4)


@pytest.mark.parametrize("body, status, field", [
    ({"prompt": "to", "max_new_tokens": 1001}, 400, "max_new_tokens"),
    ({"prompt": "to", "max_new_tokens": -1}, 400, "max_new_tokens"),
    ({"prompt": "to", "temperature": -0.5}, 400, "temperature"),
    ({"prompt": "to", "top_p": 0}, 400, "top_p"),
    ({"prompt": "to", "colour": "red"}, 400, "colour"),
    ({"prompt": "to" * 33}, 413, "prompt"),  # block_size 16 -> at most 64 characters
    ({"prompt": 5}, 400, "prompt"),
    ({"prompt": "to", "seed": -1}, 400, "seed"),
    ({"prompt": "to", "top_k": 0}, 400, "top_k"),
    ({"prompt": "to", "temperature": "hot"}, 400, "temperature"),
    (b"{not json", 400, "body"),
    (b"[1, 2]", 400, "body"),
])
def test_serve_bad_requests_get_a_status_and_name_the_field(server, body, status, field):
    got, text = post(server, "/generate", body)
    error = json.loads(text)
    assert got == status
    assert error["field"] == field
    assert field in error["error"] or field == "body"
    assert error["expected"]


def test_serve_long_prompt_message_names_the_limit(server):
    status, text = post(server, "/attention", {"prompt": "x" * 20_000})
    assert status == 413
    assert "20000 characters" in json.loads(text)["error"] and "64" in json.loads(text)["error"]


def test_serve_unknown_paths_are_404_and_the_server_keeps_serving(server):
    assert post(server, "/nope", {})[0] == 404
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(url(server, "/missing"), timeout=30)
    assert e.value.code == 404 and json.loads(e.value.read())["field"] == "path"
    with urllib.request.urlopen(url(server, "/"), timeout=30) as r:
        page = r.read().decode()
    assert "<canvas" in page and "http://" not in page and "https://" not in page  # nothing from a CDN


def test_serve_metrics_are_the_runs_csv_rows(server):
    with urllib.request.urlopen(url(server, "/metrics"), timeout=30) as r:
        metrics = json.loads(r.read())
    assert len(metrics["steps"]) == 6 and all(row["loss"] > 0 for row in metrics["steps"])
    assert metrics["evals"] and all(row["val_loss"] > 0 for row in metrics["evals"])


def test_serve_eight_concurrent_requests_all_succeed(server):
    def one(k):
        path = "/attention" if k % 2 else "/generate"
        return path, post(server, path, {"prompt": "to be", "max_new_tokens": 20, "seed": k}
                          if path == "/generate" else {"prompt": "to be"})
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(one, range(8)))
    run = server.run
    for k, (path, (status, text)) in enumerate(results):
        assert status == 200
        if path == "/generate":
            assert "".join(generated_pieces(text)) == "".join(stream_text(run.model, run.tokenizer, "to be", 20,
                                                                          0.8, None, None, k))


@pytest.mark.slow
def test_serve_page_in_headless_chromium_streams_text_and_draws_the_heatmap(server):
    webdriver = pytest.importorskip("selenium.webdriver")
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    driver_path = shutil.which("chromedriver") or "/usr/bin/chromedriver"
    if not (os.path.exists(chromium) and os.path.exists(driver_path)):
        pytest.skip("needs apt packages chromium and chromium-driver")
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=webdriver.ChromeService(executable_path=driver_path), options=options)
    try:
        driver.get(url(server, "/"))
        box = driver.find_element(By.ID, "prompt")
        box.clear()
        box.send_keys("to be")
        driver.find_element(By.ID, "max_new_tokens").clear()
        driver.find_element(By.ID, "max_new_tokens").send_keys("20")
        driver.find_element(By.ID, "go").click()
        WebDriverWait(driver, 60).until(lambda d: len(d.find_element(By.ID, "out").text) > len("to be"))
        WebDriverWait(driver, 60).until(lambda d: d.find_element(By.ID, "layer").get_attribute("value") != "")
        painted = driver.execute_script(
            "const c = document.getElementById('heat'), d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
            "let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++; return n;")
        assert painted > 1000
    finally:
        driver.quit()


def test_serve_cli_prints_the_address_and_serves_the_run(server):
    """`python -m tinygpt serve --port 0` says where it listens, and that address answers."""
    import re
    import subprocess
    import sys
    proc = subprocess.Popen([sys.executable, "-u", "-m", "tinygpt", "serve", "--run", str(server.run_dir),
                             "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        address = re.search(r"http://127\.0\.0\.1:\d+/", line)
        assert address, (line, proc.stderr.read() if proc.poll() is not None else "")
        with urllib.request.urlopen(address.group(0) + "info", timeout=60) as r:
            assert json.loads(r.read())["run"] == str(server.run_dir)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
