"""Write an evaluation task's YAML: generated from the held-out split, or local hub-format files."""

from pathlib import Path

from saturation.evaluate.tasks import build_offline_tasks, standard_task_override
from saturation.logs import log_to_file

log_to_file(snakemake.log[0])
recipe, out_dir = snakemake.params.recipe, Path(snakemake.output.tasks)
if "corpus" in recipe:
    build_offline_tasks(
        Path(snakemake.input.split),
        out_dir,
        n_cloze=recipe["cloze_items"],
        n_docs=recipe["perplexity_documents"],
        train_jsonl=Path(snakemake.input.train),
        seed=recipe["seed"],
    )
else:
    files = {split: str(Path(path).resolve()) for split, (path, _) in recipe["data_files"].items()}
    standard_task_override(recipe["task"], files, out_dir)
