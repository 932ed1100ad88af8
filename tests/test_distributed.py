"""tinygpt.distributed in one process: launcher detection, no mpi4py import without a launcher,
gradient buckets that start only when complete (against a recording stand-in for MPI), gradient
accumulation == one big batch, resume's global-batch check; and, when mpiexec is installed, whole
jobs: a dead or hanging rank fails the job within the timeout, Ctrl-C on mpiexec saves once."""

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

import tinygpt.distributed as distributed
from tinygpt.distributed.buckets import GradBuckets
from tinygpt.distributed.comm import World
from tinygpt.models import GPT, GPTConfig
from tinygpt.train import TrainConfig, Trainer

ROOT = Path(__file__).resolve().parents[1]
TEXT = "".join(f"line {i}: to be, or not to be, that is the question.\n" for i in range(200))
TINY = dict(n_layer=1, n_head=2, n_embd=16, block_size=16, eval_iters=2, eval_interval=5, warmup_steps=2,
            sample_tokens=0, steps=10)


def test_launched_size_and_rank_read_the_launchers_variables():
    assert distributed.launched_size({}) == 1 and distributed.launched_rank({}) == 0
    assert distributed.launched_size({"PMI_SIZE": "4", "PMI_RANK": "3"}) == 4
    assert distributed.launched_rank({"PMI_SIZE": "4", "PMI_RANK": "3"}) == 3
    assert distributed.launched_size({"OMPI_COMM_WORLD_SIZE": "2"}) == 2
    assert distributed.launched_rank({"SLURM_STEP_NUM_TASKS": "8", "SLURM_PROCID": "5"}) == 5
    assert distributed.launched_size({"SLURM_NTASKS": "8", "SLURM_PROCID": "0"}) == 1  # sbatch, no srun
    assert distributed.get_world(environ={"PMI_SIZE": "1"}) is None


def test_one_process_never_imports_mpi4py():
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PMI", "OMPI", "PMIX", "SLURM"))}
    code = ("import sys, tinygpt.cli, tinygpt.train, tinygpt.keras, tinygpt.distributed as d; "
            "assert d.get_world() is None; print('mpi4py' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_several_ranks_without_mpi4py_say_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "mpi4py", None)  # import mpi4py now raises ImportError
    monkeypatch.setattr(distributed.comm, "_world", None)
    with pytest.raises(distributed.MissingMPI, match=r"one of 2 ranks .*pip install 'tinygpt\[mpi\]'"):
        distributed.get_world(environ={"PMI_SIZE": "2"})


# ----- buckets, against a recording stand-in for MPI -------------------------------------------


class Recorder:
    """Enough of mpi4py's MPI and a 2-rank COMM_WORLD for World and GradBuckets: the other rank
    holds the same gradients, so a sum is twice this rank's. Records what each Iallreduce sent."""

    IN_PLACE, SUM = object(), object()

    class Request:
        @staticmethod
        def Testall(requests):
            return True

    def __init__(self, params):
        self.params, self.sent = params, []

    def Get_rank(self):
        return 0

    def Get_size(self):
        return 2

    def Iallreduce(self, send, buffer, op):
        assert send is self.IN_PLACE and op is self.SUM
        # what was sent, and which parameters had no gradient yet (backward had not reached them)
        self.sent.append((buffer.copy(), [p.grad is None for p in self.params]))
        buffer *= 2
        return object()


def tiny_gpt():
    return GPT(GPTConfig(vocab_size=11, block_size=8, n_layer=2, n_head=2, n_embd=16), seed=3)


def test_buckets_start_each_allreduce_when_its_gradients_are_complete_and_average():
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 11, (3, 8)), rng.integers(0, 11, (3, 8))
    ref = tiny_gpt()
    ref(x, y)[1].backward()
    expected = {n: p.grad.copy() for n, p in ref.named_parameters()}

    model = tiny_gpt()
    params = model.parameters()
    rec = Recorder(params)
    buckets = GradBuckets(params, World(rec, rec), bucket_bytes=2048)
    assert len(buckets.buckets) > 3
    buckets.backward(model(x, y)[1])
    names = {id(p): n for n, p in model.named_parameters()}
    assert len(rec.sent) == len(buckets.buckets)
    for b, (sent, _) in zip(buckets.buckets, rec.sent):  # complete when sent: wte (used twice) too
        whole = np.concatenate([expected[names[id(p)]].reshape(-1) for p in b.params])
        np.testing.assert_allclose(sent, whole, rtol=1e-6, atol=1e-7)
    for n, p in model.named_parameters():  # the sum over 2 ranks / 2: this rank's gradient again
        np.testing.assert_allclose(p.grad, expected[n], rtol=1e-6, atol=1e-7, err_msg=n)
    # overlap: the first buckets left while backward had not yet reached the first layers' parameters
    assert any(rec.sent[0][1]) and not any(rec.sent[-1][1])
    assert buckets.stats["bytes"] == 4 * sum(p.data.size for p in params)


def test_buckets_refuse_a_bad_size_or_a_float64_parameter():
    rec = Recorder([])
    with pytest.raises(ValueError, match="bucket_bytes must be an int >= 4"):
        GradBuckets(tiny_gpt().parameters(), World(rec, rec), bucket_bytes=0)
    from tinygpt.tensor import Tensor
    with pytest.raises(TypeError, match="float32"):
        GradBuckets([Tensor(np.zeros(3), requires_grad=True)], World(rec, rec))


# ----- the Trainer in one process -----------------------------------------------------------


@pytest.fixture
def text_file(tmp_path):
    path = tmp_path / "text.txt"
    path.write_text(TEXT, encoding="utf-8")
    return path


def train_losses(config):
    losses = []
    trainer = Trainer(config, progress=lambda e: losses.append(e.loss) if e.kind == "step" else None)
    trainer.run()
    return losses, trainer


def test_grad_accum_draws_and_learns_what_one_big_batch_does(tmp_path, text_file):
    big, a = train_losses(TrainConfig(data=str(text_file), out_dir=str(tmp_path / "a"), batch_size=8, **TINY))
    small, b = train_losses(TrainConfig(data=str(text_file), out_dir=str(tmp_path / "b"), batch_size=2,
                                        grad_accum=4, **TINY))
    assert b.global_batch == 8
    np.testing.assert_allclose(small, big, rtol=0, atol=1e-5)  # float32: the mean taken in 4 parts
    for (name, p), q in zip(a.model.named_parameters(), b.model.parameters()):
        np.testing.assert_allclose(q.data, p.data, rtol=0, atol=1e-4, err_msg=name)
    assert a.estimate_loss()["val"] == pytest.approx(b.estimate_loss()["val"], abs=1e-5)


def test_resume_at_the_same_rank_count_keeps_batch_size_and_grad_accum(tmp_path, text_file):
    """Resumed bit for bit: the same micro-batches. (Another rank count may regroup them: see
    tests/test_distributed_mpi.py, where the global batch is what must not change.)"""
    config = TrainConfig(data=str(text_file), out_dir=str(tmp_path / "r"), batch_size=4, grad_accum=2, **TINY)
    train_losses(config)
    again = TrainConfig.from_run(tmp_path / "r", resume=True, steps=12, grad_accum=1, batch_size=8)
    with pytest.raises(ValueError, match="batch_size is 8 but the run was made with 4"):
        Trainer(again)


def test_config_refuses_unsupported_zero_stages_and_bad_timeouts():
    with pytest.raises(ValueError, match="zero must be 0 .* or 1 .* stages 2 and 3 .* not supported"):
        TrainConfig(zero=2)
    with pytest.raises(ValueError, match="mpi_timeout must be a number of seconds > 0, got 0"):
        TrainConfig(mpi_timeout=0)
    with pytest.raises(ValueError, match="grad_accum must be an integer >= 1, got 0"):
        TrainConfig(grad_accum=0)


# ----- whole jobs under mpiexec -------------------------------------------------------------


def mpiexec_or_skip():
    pytest.importorskip("mpi4py")
    path = shutil.which("mpiexec") or str(Path(sys.executable).parent / "mpiexec")
    if not Path(path).exists():
        pytest.skip("mpiexec is not installed (pip install 'tinygpt[mpi]')")
    return path


JOB = textwrap.dedent("""
    import os, signal, sys, time
    from tinygpt import distributed
    from tinygpt.train import TrainConfig, Trainer
    fate, out = sys.argv[1], sys.argv[2]
    config = TrainConfig(data=sys.argv[3], out_dir=out, n_layer=1, n_head=2, n_embd=16, block_size=16,
                         batch_size=2, eval_iters=1, eval_interval=1000, steps=100000, sample_tokens=0,
                         mpi_timeout=5)
    trainer = Trainer(config)
    if distributed.launched_rank() == 1:
        step = trainer.train_step
        def doomed():
            if trainer.step == 5:
                if fate == "dies":
                    os._exit(9)
                os.kill(os.getpid(), signal.SIGSTOP)  # hangs: alive, but never answers again
            return step()
        trainer.train_step = doomed
    trainer.run()
""")


@pytest.mark.slow
@pytest.mark.parametrize("fate", ["dies", "hangs"])
def test_a_dead_or_hanging_rank_fails_the_job_within_the_timeout(tmp_path, text_file, fate):
    mpiexec = mpiexec_or_skip()
    script = tmp_path / "job.py"
    script.write_text(JOB)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    started = time.monotonic()
    job = subprocess.run([mpiexec, "-n", "2", sys.executable, str(script), fate, str(tmp_path / "run"),
                          str(text_file)], env=env, capture_output=True, text=True, timeout=120)
    assert job.returncode != 0
    assert time.monotonic() - started < 90
    if fate == "hangs":  # the deadline, not the launcher, ended this one
        assert "waited 5 s for the other ranks" in job.stderr


@pytest.mark.slow
def test_ctrl_c_on_mpiexec_stops_every_rank_after_one_checkpoint(tmp_path, text_file):
    mpiexec = mpiexec_or_skip()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    run_dir = tmp_path / "run"
    job = subprocess.Popen([mpiexec, "-n", "2", sys.executable, "-m", "tinygpt", "train", "--data", str(text_file),
                            "--out-dir", str(run_dir), "--steps", "100000", "--batch-size", "2", "--n-layer", "1",
                            "--n-embd", "16", "--n-head", "2", "--block-size", "16", "--eval-interval", "100000",
                            "--eval-iters", "1", "--sample-tokens", "0"],
                           env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 60
    while not (run_dir / "train_steps.csv").is_file() or \
            len((run_dir / "train_steps.csv").read_text().splitlines()) < 20:
        assert time.monotonic() < deadline and job.poll() is None, "the job did not start training"
        time.sleep(0.2)
    job.send_signal(signal.SIGINT)
    out, _ = job.communicate(timeout=60)
    assert job.returncode == 130, out
    saved = sorted(p.name for p in run_dir.glob("ckpt_*.json"))
    assert len(saved) == 1 and out.count("saved checkpoint /") == 1, out
    assert f"continue with: tinygpt train --resume {run_dir}" in out


def test_info_names_the_mpi_library_or_how_to_install_it(capsys, monkeypatch):
    from tinygpt.cli import main
    have = distributed.mpi_library()
    if have is None:
        assert main(["info"]) == 0
        assert "MPI: mpi4py not installed (pip install 'tinygpt[mpi]'" in capsys.readouterr().out
        return
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert f"MPI: {have['library']} (MPI {have['standard']}, mpi4py {have['mpi4py']}), 1 rank(s) in this job" in out


def test_finetune_under_mpiexec_is_refused_with_the_reason(capsys, monkeypatch):
    from tinygpt.cli import main
    monkeypatch.setenv("PMI_SIZE", "2")
    assert main(["finetune", "--from", "nowhere", "--corpus", "sentiment-zh"]) == 2
    assert "tinygpt finetune is not data-parallel" in capsys.readouterr().err


def test_zero_in_one_process_says_it_does_nothing(tmp_path, text_file):
    logs = []
    Trainer(TrainConfig(data=str(text_file), out_dir=str(tmp_path / "z"), batch_size=2, zero=1, **TINY),
            log=logs.append)
    assert any("zero=1 does nothing in one process" in m for m in logs)
