"""Dataset tools: ``python -m polytask.data {inspect,import-rot,import-d4rl,import-spirl} ...``
(also ``polytask-data``).

    python -m polytask.data inspect polytask/metaworld/hammer-pixels-v0      # by id under ./data
    python -m polytask.data inspect data/datasets/polytask/metaworld/hammer-pixels-v0
    python -m polytask.data import-rot expert_demos/hammer.pkl polytask/metaworld/hammer-pixels-v0
    python -m polytask.data import-d4rl ~/.d4rl/datasets/kitchen_mixed-v0.hdf5 d4rl/kitchen-mixed-v0
    python -m polytask.data import-spirl data/maze/ polytask/maze/spirl-play-pixels-v0
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

from polytask.data.d4rl import load_d4rl, load_spirl
from polytask.data.demos import DatasetError, dataset_path, load_episodes, read_metadata, write_dataset
from polytask.data.rot_pickle import load_rot_pickle


def _resolve(target: str, data_dir: str) -> Path:
    path = Path(target)
    return path if (path / "data" / "metadata.json").exists() else dataset_path(data_dir, target)


def inspect(target: str, data_dir: str) -> str:
    """Summary of a dataset: episodes, lengths, returns, success, shapes, seeds, env spec.

    Raises:
        DatasetError: if there is no readable dataset at ``target``.
    """
    path = _resolve(target, data_dir)
    episodes = load_episodes(path)
    meta = read_metadata(path)
    lengths = np.array([len(e) for e in episodes])
    returns = np.array([e.reward.sum() for e in episodes])
    success = np.array([e.success.max(initial=0.0) > 0 for e in episodes])
    ep = episodes[0]
    lines = [
        f"dataset      {meta.get('dataset_id')}  ({path})",
        f"episodes     {len(episodes)}   steps {int(lengths.sum())}",
        f"length       mean {lengths.mean():.1f}  min {lengths.min()}  max {lengths.max()}",
        f"return       mean {returns.mean():.2f}  std {returns.std():.2f}  min {returns.min():.2f}  max {returns.max():.2f}",
        f"success      {success.mean():.2f} ({success.sum()}/{len(success)})",
        *(f"obs[{k!r}]".ljust(14) + f"{v.dtype} {v.shape[1:]} per step" for k, v in ep.obs.items()),
        f"action       {ep.action.dtype} {ep.action.shape[1:]}  range [{min(e.action.min() for e in episodes):.2f}, "
        f"{max(e.action.max() for e in episodes):.2f}]",
        f"seeds        {[e.seed for e in episodes][:20]}{' ...' if len(episodes) > 20 else ''}",
        f"algorithm    {meta.get('algorithm_name')}",
    ]
    spec = meta.get("env_spec")
    if spec:
        spec = json.loads(spec)
        lines.append(f"env          {spec.get('id')} {spec.get('kwargs')}")
    if "polytask" in meta:
        extra = {k: v for k, v in meta["polytask"].items() if k != "seeds"}
        lines.append(f"provenance   {extra}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="polytask-data", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=os.environ.get("POLYTASK_DATA_DIR", "data"),
                        help="data_dir of the runs (datasets live in <data_dir>/datasets)")
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("inspect", help="print episodes, lengths, returns, success and shapes")
    p.add_argument("dataset", help="dataset id (e.g. polytask/metaworld/hammer-pixels-v0) or folder")
    p = sub.add_parser("import-rot", help="convert a PolyTask/ROT demo pickle to a Minari dataset")
    p.add_argument("pickle", help="path of the [pixels, states, actions, rewards] pickle")
    p.add_argument("dataset_id", help="id to write, e.g. polytask/metaworld/hammer-pixels-v0")
    p.add_argument("--frame-channels", type=int, default=3, help="channels per frame in the stacks")
    p = sub.add_parser("import-d4rl", help="convert a D4RL-style HDF5 file (observations, actions, rewards, "
                                          "terminals, timeouts) to a Minari dataset")
    p.add_argument("file", help="path of the .hdf5 file, e.g. kitchen_mixed-v0.hdf5")
    p.add_argument("dataset_id", help="id to write, e.g. d4rl/kitchen-mixed-v0")
    p = sub.add_parser("import-spirl", help="convert SPiRL/SkiLD rollouts (traj<i>/states, actions, images, "
                                           "pad_mask) to a Minari dataset")
    p.add_argument("path", help="an .h5 rollout file or a folder searched for them")
    p.add_argument("dataset_id", help="id to write, e.g. polytask/maze/spirl-play-pixels-v0")
    p.add_argument("--no-images", action="store_true", help="keep states only, not the images")
    args = parser.parse_args(argv)
    try:
        if args.cmd == "inspect":
            print(inspect(args.dataset, args.data_dir))
        else:
            source, kind, episodes = {
                "import-rot": lambda: (args.pickle, "PolyTask/ROT pickle", load_rot_pickle(args.pickle, args.frame_channels)),
                "import-d4rl": lambda: (args.file, "D4RL HDF5 file", load_d4rl(args.file)),
                "import-spirl": lambda: (args.path, "SPiRL/SkiLD rollouts", load_spirl(args.path, not args.no_images)),
            }[args.cmd]()
            path = write_dataset(args.data_dir, args.dataset_id, episodes, env=None, algorithm_name=f"imported {kind}",
                                 description=f"imported from {source}", extra_metadata={"source": str(source)})
            print(f"Wrote {len(episodes)} episodes to {path}")
    except DatasetError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
