"""The paper's experiment grids and its numbers.

`GRIDS` maps a grid name to a `Grid`: the recipe, the cells (`Run`: an
imbalance or `"balanced"`, a method, a feature size `d`, optionally a
TFDS dataset) and the paper's top-1 % of each cell (best test epoch).
`Selection` picks some cells of a grid by dataset, method, imbalance and
`d`. `keras_dlpa_paper.reproduce` runs them.
"""

from __future__ import annotations

import dataclasses

# Paper numbers (top-1 %, best test epoch), keyed by (setting, method, d).
_TABLE4 = {
    ("0.005", "softmax", 128): 38.7,
    ("0.01", "softmax", 128): 43.0,
    ("0.02", "softmax", 128): 48.1,
    ("0.005", "etf", 128): 40.9,
    ("0.01", "etf", 128): 45.3,
    ("0.02", "etf", 128): 50.4,
    ("0.005", "dl2pa", 128): 41.3,
    ("0.01", "dl2pa", 128): 44.9,
    ("0.02", "dl2pa", 128): 50.7,
    ("0.005", "dl2pa", 50): 40.9,
    ("0.01", "dl2pa", 50): 45.2,
    ("0.02", "dl2pa", 50): 50.8,
}
_TABLE1 = {
    ("balanced", "dl2pa", 10): 57.21,
    ("balanced", "dl2pa", 25): 64.63,
    ("balanced", "dl2pa", 50): 66.22,
    ("balanced", "dl2pa", 100): 62.85,
    ("balanced", "softmax", 10): 25.67,
    ("balanced", "softmax", 25): 60.0,
    ("balanced", "softmax", 50): 60.6,
    ("balanced", "softmax", 100): 62.1,
}
_TABLE6 = {
    ("0.005", "dl2pa", 64): 71.5,
    ("0.01", "dl2pa", 64): 76.9,
    ("0.02", "dl2pa", 64): 81.4,
    ("0.005", "etf", 64): 71.9,
    ("0.01", "etf", 64): 76.5,
    ("0.02", "etf", 64): 81.0,
    ("0.005", "softmax", 64): 67.3,
    ("0.01", "softmax", 64): 72.8,
    ("0.02", "softmax", 64): 78.6,
}


def _lt_paper(dataset: str, rows: dict) -> dict:
    """`{(dataset, imbalance, method, 64): top-1}` of paper Table 6."""
    return {
        (dataset, setting, method, 64): value
        for method, values in rows.items()
        for setting, value in zip(("0.005", "0.01", "0.02"), values)
    }


# Table 6, SVHN-LT and STL-10-LT (imbalance 0.005 / 0.01 / 0.02).
_TABLE6.update(
    _lt_paper(
        "svhn_cropped",
        {
            "softmax": (40.5, 40.9, 49.3),
            "etf": (42.8, 45.7, 49.8),
            "dl2pa": (40.9, 47.0, 49.7),
        },
    )
)
_TABLE6.update(
    _lt_paper(
        "stl10",
        {
            "softmax": (33.1, 37.9, 38.8),
            "etf": (33.5, 37.2, 37.9),
            "dl2pa": (35.7, 35.6, 38.0),
        },
    )
)
# Table 8 (balanced CIFAR-100, ResNet-32), d = 16 / 32 / 64.
_TABLE8 = {
    ("balanced", method, dim): value
    for method, values in (
        ("softmax", (62.62, 61.81, 63.23)),
        ("psc_star", (62.54, 64.18, 64.53)),
        ("ours_star", (60.51, 63.43, 64.71)),
        ("dl2pa", (62.72, 65.09, 65.94)),
    )
    for dim, value in zip((16, 32, 64), values)
}
# Paper Table 7 (c = 100): max / min pairwise cosine of its prototypes.
TABLE7 = {50: (0.01, -1.0)}


@dataclasses.dataclass(frozen=True)
class Run:
    """One cell of a grid (before seeds).

    Attributes:
        setting: the imbalance as text (`"0.01"`), or `"balanced"`.
        method: a `keras_dlpa.methods` name.
        dim: the feature size `d`.
        dataset: a TFDS builder name for a cell that reads TensorFlow
            Datasets (`--dataset`, no `--image-dir`); `None`: the grid's
            dataset (its archive when there is one).
    """

    setting: str
    method: str
    dim: int
    dataset: str | None = None

    def key(self):
        """The key of `Grid.paper`: `(setting, method, dim)`, with the
        dataset in front for a cell of another dataset."""
        if self.dataset is None:
            return (self.setting, self.method, self.dim)
        return (self.dataset, self.setting, self.method, self.dim)


@dataclasses.dataclass(frozen=True)
class Grid:
    """A named experiment grid.

    Attributes:
        name: grid name.
        title: the paper table or figure it reproduces.
        recipe: the recipe each run uses.
        dataset: `"cifar100"` or `"cifar10"` (which archive `--image-dir`)
            of the cells without a `Run.dataset` of their own.
        runs: the cells.
        paper: paper top-1 % per cell key (missing: not reported).
        args: extra recipe flags for every run.
        quick_args: flags added with `quick=True` (tiny CI runs).
        quick_dims: the `d` of the cells of a quick run; `None`: imbalance
            0.01, or balanced with d <= 10.
    """

    name: str
    title: str
    recipe: str
    dataset: str
    runs: tuple
    paper: dict
    args: tuple = ()
    quick_args: tuple = ("--quick",)
    quick_dims: tuple | None = None

    def _dataset(self, run: Run) -> str:
        return run.dataset or self.dataset

    def datasets(self) -> tuple:
        """The datasets of the cells, in order."""
        return tuple(dict.fromkeys(self._dataset(r) for r in self.runs))

    def methods(self) -> tuple:
        """The methods of the cells, in order."""
        return tuple(dict.fromkeys(r.method for r in self.runs))

    def cells(self, quick: bool = False, select: Selection | None = None):
        """The runs (a tuple); with `quick` only imbalance 0.01 / d <= 10
        (or `quick_dims`); with `select` only the selected cells (a
        `ValueError` names a dataset, method, imbalance or d the grid
        lacks)."""
        runs = self.runs
        if select is not None:
            runs = tuple(r for r in runs if select.check(self).matches(self, r))
        if not quick:
            return runs
        if self.quick_dims is not None:
            return tuple(r for r in runs if r.dim in self.quick_dims)
        return tuple(
            r
            for r in runs
            if r.setting == "0.01" or (r.setting == "balanced" and r.dim <= 10)
        )


@dataclasses.dataclass(frozen=True)
class Selection:
    """The cells of a grid to run and report; `None` keeps every value.

    Attributes:
        datasets: dataset names (`Grid.datasets()`).
        methods: method names (`Grid.methods()`).
        imbalances: settings, e.g. `("0.01",)` or `("balanced",)`; numbers
            compare as numbers (`"0.010"` is `"0.01"`).
        dims: feature sizes `d`.
    """

    datasets: tuple | None = None
    methods: tuple | None = None
    imbalances: tuple | None = None
    dims: tuple | None = None

    def _axes(self, grid: Grid):
        return (
            ("datasets", self.datasets, grid._dataset),
            ("methods", self.methods, lambda r: r.method),
            ("imbalances", self.imbalances, lambda r: _setting(r.setting)),
            ("dims", self.dims, lambda r: int(r.dim)),
        )

    def _wanted(self, kind, values):
        if kind == "imbalances":
            return {_setting(v) for v in values}
        if kind == "dims":
            return {int(v) for v in values}
        return set(values)

    def check(self, grid: Grid) -> Selection:
        """`self`, or a `ValueError` naming values `grid` does not have."""
        for kind, values, key in self._axes(grid):
            if values is None:
                continue
            known = tuple(dict.fromkeys(key(r) for r in grid.runs))
            if not values or not self._wanted(kind, values) <= set(known):
                raise ValueError(
                    f"Grid {grid.name!r} has the {kind} "
                    f"{', '.join(map(str, known))}. Received: "
                    f"{kind}={tuple(values)}"
                )
        return self

    def matches(self, grid: Grid, run: Run) -> bool:
        return all(
            values is None or key(run) in self._wanted(kind, values)
            for kind, values, key in self._axes(grid)
        )


def _setting(value) -> str:
    """`"balanced"`, or the imbalance as a canonical number text."""
    text = str(value).strip()
    if text == "balanced":
        return text
    try:
        return repr(float(text))
    except ValueError:
        return text


def _lt_runs(methods_dims, imbalances=("0.005", "0.01", "0.02"), dataset=None):
    return tuple(
        Run(i, m, d, dataset) for i in imbalances for m, d in methods_dims
    )


def _balanced_runs(dims, methods, extra=()):
    runs = [Run("balanced", m, d) for d in dims for m in methods]
    return tuple(runs) + tuple(extra)


_TABLE6_CELLS = (("softmax", 64), ("etf", 64), ("dl2pa", 64))
# Softmax first: the ours_star run of each (seed, d) reads its weights.
_TABLE8_METHODS = ("softmax", "psc_star", "ours_star", "dl2pa")

GRIDS = {
    "table4": Grid(
        "table4",
        "Table 4: CIFAR-100-LT, ResNet-32",
        "cifar100_lt",
        "cifar100",
        _lt_runs(
            (("softmax", 128), ("etf", 128), ("dl2pa", 128), ("dl2pa", 50))
        ),
        _TABLE4,
    ),
    "fig4a": Grid(
        "fig4a",
        "Table 1 / Fig. 4a: balanced CIFAR-100, dynamic vs static",
        "cifar100",
        "cifar100",
        _balanced_runs(
            (3, 10, 25, 50, 100),
            ("dl2pa", "static", "softmax"),
            (Run("balanced", "etf", 100),),
        ),
        _TABLE1,
    ),
    "fig4a_cpu": Grid(
        "fig4a_cpu",
        "Fig. 4a at CPU scale: balanced CIFAR-100, ResNet-8 (width 8), "
        "80 training + 20 validation images per class, 8 epochs",
        "cifar100",
        "cifar100",
        _balanced_runs((3, 10, 25), ("dl2pa", "static", "softmax")),
        _TABLE1,
        args=(
            "--depth",
            "8",
            "--width",
            "8",
            "--train-per-class",
            "100",
            "--epochs",
            "8",
            "--batch-size",
            "64",
            "--lr",
            "0.05",
            "--warmup-epochs",
            "1",
            "--milestones",
            "6",
        ),  # fmt: skip
    ),
    "table6": Grid(
        "table6",
        "Table 6: CIFAR-10-LT, SVHN-LT, STL-10-LT, ResNet-32 (d = 64)",
        "cifar10_lt",
        "cifar10",
        _lt_runs(_TABLE6_CELLS)
        + _lt_runs(_TABLE6_CELLS, dataset="svhn_cropped")
        + _lt_runs(_TABLE6_CELLS, dataset="stl10"),
        _TABLE6,
    ),
    "table8": Grid(
        "table8",
        "Table 8: balanced CIFAR-100, ResNet-32, prototype distribution "
        "(PSC = softmax, PSC* = psc_star, Ours* = ours_star, Ours = dl2pa)",
        "cifar100",
        "cifar100",
        _balanced_runs((16, 32, 64), _TABLE8_METHODS),
        _TABLE8,
        quick_dims=(16,),
    ),
}
