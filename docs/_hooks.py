"""mkdocs hook (mkdocs.yml `hooks:`): the performance page shows the plot
that `python perf/run.py --plot` writes to perf/results/, without a copy of
it under docs/."""
import os

from mkdocs.structure.files import File

PLOTS = ["perf/results/results.png"]


def on_files(files, config):
    root = os.path.dirname(config["config_file_path"])
    for path in PLOTS:
        if os.path.exists(os.path.join(root, path)):
            files.append(File(path, src_dir=root, dest_dir=config["site_dir"],
                              use_directory_urls=config["use_directory_urls"]))
    return files
