"""Index readers: one per on-disk dataset layout, each producing a `DatasetIndex` of clip records.

Readers only look at tables and file existence (MIMIC also probes DICOM headers to tell cines from
stills and Doppler spectra); decoding is the job of `echojepa.data.check` and of the io layer at load
time. Splits are assigned per patient/exam, never per clip; a bad row raises `DatasetError`, or with
`on_error="skip"` is left out, logged and counted in `DatasetIndex.skipped`.

Which module reads which format (the `format` names of `read_index`):

- `echonet_dynamic`: EchoNet-Dynamic (`FileList.csv`, `VolumeTracings.csv`, `Videos/*.avi`)
- `echonet_pediatric`: EchoNet-Pediatric (`<view>/FileList.csv`, fold numbers as splits)
- `mimic`: MIMIC-IV-Echo (`echo-record-list.csv` + DICOM tree; stills and Doppler excluded)
- `csv_index`: the generic CSV `path,label[,split,patient,study,view]` (format `csv`)
- `registry`: `READERS` (format name -> reader) and `read_index`

and what they share:

- `errors`: `DatasetError` and the `on_error` policy (raise, or skip, log and count)
- `tables`: CSV tables, number and label cells with their range checks (`LABEL_RANGES`)
- `splits`: split names, hashed per-patient splits, the no-leak check

Importers use this package (`from echojepa.data.datasets import read_index`); the reader modules log
under `echojepa.data.datasets.*`, so the `echojepa.data.datasets` logger controls them all.
"""

from echojepa.data.datasets.csv_index import read_csv_index
from echojepa.data.datasets.echonet_dynamic import read_echonet_dynamic
from echojepa.data.datasets.echonet_pediatric import (
    PEDIATRIC_FOLDS,
    pediatric_fold_split,
    read_echonet_pediatric,
)
from echojepa.data.datasets.errors import DatasetError
from echojepa.data.datasets.mimic import NOT_A_CINE, read_mimic
from echojepa.data.datasets.registry import READERS, read_index
from echojepa.data.datasets.splits import DEFAULT_SPLIT_FRACTIONS, hash_split, normalise_split
from echojepa.data.datasets.tables import LABEL_RANGES, label_problem

__all__ = [
    "DEFAULT_SPLIT_FRACTIONS",
    "LABEL_RANGES",
    "NOT_A_CINE",
    "PEDIATRIC_FOLDS",
    "READERS",
    "DatasetError",
    "hash_split",
    "label_problem",
    "normalise_split",
    "pediatric_fold_split",
    "read_csv_index",
    "read_echonet_dynamic",
    "read_echonet_pediatric",
    "read_index",
    "read_mimic",
]
