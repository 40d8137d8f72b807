"""Report figures. Each `plot_*` function draws one figure, writes it as a PNG and returns the path.

canvas         DPI, save_png (a Figure to a PNG file), as_1d (a non-empty 1-D float array)
predictions    reading a probe's predictions CSV: regression pairs, classification indices and names
lvef           LVEF agreement: Bland-Altman, predicted against true
views          view classification: confusion matrix (counting and drawing), sample efficiency
bars           grouped bars per condition and backbone: robustness, pediatric transfer
loss_curves    pretraining loss against step
online_probes  reading a run's online_probe.csv; online probe metrics against pretraining step
attention      attention heatmaps over frames
"""

from echojepa.report.plots.attention import plot_attention
from echojepa.report.plots.bars import plot_grouped_bars, plot_pediatric, plot_robustness
from echojepa.report.plots.canvas import DPI
from echojepa.report.plots.loss_curves import plot_loss_curves
from echojepa.report.plots.lvef import plot_bland_altman, plot_pred_vs_true
from echojepa.report.plots.online_probes import ONLINE_REFERENCES, plot_online_probes, read_online_probe_csv
from echojepa.report.plots.predictions import read_class_predictions, read_regression_predictions
from echojepa.report.plots.views import confusion_matrix, plot_confusion, plot_sample_efficiency

__all__ = [
    "DPI",
    "ONLINE_REFERENCES",
    "confusion_matrix",
    "plot_attention",
    "plot_bland_altman",
    "plot_confusion",
    "plot_grouped_bars",
    "plot_loss_curves",
    "plot_online_probes",
    "plot_pediatric",
    "plot_pred_vs_true",
    "plot_robustness",
    "plot_sample_efficiency",
    "read_class_predictions",
    "read_online_probe_csv",
    "read_regression_predictions",
]
