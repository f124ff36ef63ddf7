# The AVVP benchmark: every row of every table of the tables sheets (the paper's Tables 1-4, the later methods'
# Table 5, a user's own), trained, evaluated and tabulated.
#
#   snakemake results/table2.md                         one table (its runs, and only those)
#   snakemake                                           every table, the figures and the diagnostics
#   snakemake figures                                   the figures (results/figures/*.png)
#   snakemake diagnostics                               per-class F, leak, co-occurrence (results/diagnostics/)
#   snakemake --workflow-profile profiles/slurm         the same on a SLURM cluster
#   snakemake --report results/report.html              tables and figures in one HTML report
# Snakemake reads profiles/default by itself (the workflow profile); --workflow-profile replaces it.
#
# The stages (workflow/rules/*.smk) only call `avvp` subcommands, one file on disk between each two:
#   synthesize -> pack -> train (per row and seed) -> per-seed label files (a label source's stages)
#   -> train (the rows on them) -> passes over each run (a gating's file, evaluate) -> profile -> table -> figure
#   -> diagnose. The generic kinds (train, a per-seed file, a pass over a run) are one rule template each,
#   instantiated for every registered stage (workflow/rules/stages.smk, avvp/stages.py).

from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


include: "workflow/rules/config.smk"


config.update(typed(config))
validated(config, "workflow/schemas/config.schema.yaml")
config["precision"] = resolved_precision(config)   # `auto` becomes what every job runs with (and its key)


include: "workflow/rules/common.smk"
include: "workflow/rules/recover.smk"


report: "workflow/report/workflow.rst"


wildcard_constraints:
    slug="|".join(sorted(NAME, key=len, reverse=True)),
    seed=r"\d+",
    dseed=r"\d+",
    **{w: regex for stage in RUN_PASSES for w, regex in stage.wildcards.items()},
    table="|".join(TABLES),
    kind="|".join(FIGURES),
    preset="tiny|default|full",
    packed=r"llp|(tiny|default|full)-s\d+",


localrules:
    all,
    figures,


rule all:
    """Every table of the tables sheets, every figure and the diagnostics."""
    input:
        [str(paths.table_md(table)) for table in sorted(TABLES)],
        [str(paths.figure_png(kind)) for kind in FIGURES],
        lambda wildcards: DIAGNOSTICS_FILES,  # defined in workflow/rules/diagnose.smk, included below


rule figures:
    """Every figure: `snakemake figures`."""
    input:
        [str(paths.figure_png(kind)) for kind in FIGURES],


include: "workflow/rules/data.smk"
include: "workflow/rules/stages.smk"
include: "workflow/rules/tables.smk"
include: "workflow/rules/diagnose.smk"
