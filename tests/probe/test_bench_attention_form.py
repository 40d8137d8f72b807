"""The attention-form benchmark times both forms of the same probe step and leaves the threshold as it was."""

from echojepa.models import attention
from echojepa.probe.bench import attention_form_step_times


def test_attention_form_benchmark_restores_the_chunk_threshold_and_reports_both_forms(monkeypatch):
    seen = []
    real = attention.chunked_attention

    def spy(*a, **k):
        seen.append(attention.CHUNK_FROM)
        return real(*a, **k)

    monkeypatch.setattr(attention, "chunked_attention", spy)
    monkeypatch.setattr(attention, "CHUNK_FROM", 0)  # the "chosen" form is then the chunked one
    before = attention.CHUNK_FROM
    out = attention_form_step_times(
        rounds=1, in_dim=8, token_grid=(2, 2, 2), clips=1, width=16, attn_heads=2, batch_size=2
    )
    assert before == attention.CHUNK_FROM
    assert out["explicit_step_s"] > 0 and out["chosen_step_s"] > 0 and out["tokens"] == 8
    assert out["chosen_speedup"] == out["explicit_step_s"] / out["chosen_step_s"]
    assert seen and set(seen) == {0}  # chosen steps ran chunked; forced-explicit steps never did
