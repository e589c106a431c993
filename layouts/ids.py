"""Component ids shared by layouts/ and callbacks/ (one place, so a rename cannot break a callback silently)."""

# shell
URL = "url"
TABS = "tabs"
PAGE_BROWSER = "page-browser"
PAGE_RUNS = "page-runs"
PAGE_IGV = "page-igv"
PAGE_MNIST = "page-mnist"
APP_ALERT = "app-alert"

# stores
JOB = "job-store"  # session: the running/last job {run_id, request, status}
JOB_TRIGGER = "job-trigger"  # memory: starts / re-attaches the background job
JOB_DONE = "job-done"  # memory: what the background callback returned
VIEW_RUN = "view-run"  # memory: run id shown in the browser (also ?run= in the URL)
LOCUS = "locus-store"  # memory: locus label, or None for the gene's default window

# controls
GENE = "gene"
CELL = "cell-type"
METHOD = "method"
L = "param-L"
K = "param-k"
VALUE = "param-value"
SIGN = "param-sign"
BETA = "param-beta"
SEED = "param-seed"
WINDOW = "param-window"
RUN_BTN = "run-button"
CANCEL_BTN = "cancel-button"
PROGRESS_WRAP = "progress-wrap"
PROGRESS = "progress-bar"
PROGRESS_TEXT = "progress-text"
JOB_ALERT = "job-alert"
GENE_INFO = "gene-info"

# browser view
LOCUS_INPUT = "locus-input"
LOCUS_GO = "locus-go"
LOCUS_RESET = "locus-reset"
LOCUS_ALERT = "locus-alert"
EXPORT_PNG = "export-png"
EXPORT_SVG = "export-svg"
EXPORT_DUMMY = "export-dummy"
OVERLAY = "overlay-methods"
GENOME_GRAPH = "genome-graph"
RUN_SUMMARY = "run-summary"
LISTED_LINKS = "listed-links"
OVERLAY_SUMMARY = "overlay-summary"
DROP_ONE_GRAPH = "drop-one-graph"
PAIRWISE_GRAPH = "pairwise-graph"
PAIRWISE_MODE = "pairwise-mode"
TRAJECTORY_GRAPH = "trajectory-graph"
EFFECT_L_GRAPH = "effect-l-graph"
HELDOUT_CARD = "heldout-card"
LINK_TABLE = "link-table"
DOWNLOAD = "download"
DL_TSV = "download-tsv"
DL_CSV = "download-csv"
DL_BEDPE = "download-bedpe"
DL_INTERACT = "download-interact"
DL_BED = "download-bed"

# runs page
RUNS_GENE = "runs-gene"
RUNS_CELL = "runs-cell"
RUNS_METHOD = "runs-method"
RUNS_REFRESH = "runs-refresh"
RUNS_TABLE = "runs-table"
JOBS_TABLE = "jobs-table"
JOBS_TICK = "jobs-tick"
JOBS_WRAP = "jobs-wrap"
JOBS_ALERT = "jobs-alert"

# IGV page
IGV_CONTAINER = "igv-container"
IGV_INFO = "igv-info"
# (IGV locus sync ids go here)
IGV_LOCUS = "igv-locus"  # memory, rendered next to each Igv as {"type": IGV_LOCUS, "igv": its id}: where IGV went

DOWNLOAD_FORMATS = {DL_TSV: "tsv", DL_CSV: "csv", DL_BEDPE: "bedpe", DL_INTERACT: "interact", DL_BED: "bed"}
