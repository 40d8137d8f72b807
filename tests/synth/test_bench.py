from echojepa.synth.bench import benchmark


def test_benchmark_renders_and_reports_figures(capsys):
    res = benchmark(n=2, frames=4, size=48)
    assert res["clips"] == 2 and res["clips_per_s"] > 0
    assert "clips/s" in capsys.readouterr().out
