"""`render RUN_DIR`: a GIF of one greedy episode of a DQN run."""

import os

from tfsuite.config import read_run_config
from tfsuite.errors import user_error
from tfsuite.packages import install_hint

EVAL_SEED = 10_000  # evaluation episodes are seeded apart from training's


def render(run_dir, out, seed=EVAL_SEED, fps=50, scale=0.5):
    """Writes a GIF of one greedy episode to `out`; returns (path, return, frames).

    `out` must be a new `.gif` path: an existing file is never replaced.
    """
    from PIL import Image

    from tfsuite.rl.envs import gymnasium
    from tfsuite.rl.policy import play_episode
    from tfsuite.models.saving import load_run_model

    _check_gif_path(out)
    # Browsers play GIF frames shorter than 20 ms at 100 ms: 50 fps is the most a GIF shows.
    if not 0 < scale <= 4 or not 1 <= fps <= 50:
        raise user_error("Bad render settings", "--scale in (0, 4] and --fps in [1, 50]",
                         f"scale={scale}, fps={fps}")
    check_seed(seed)
    config = read_run_config(run_dir)
    model = load_run_model(run_dir)
    gym = gymnasium()
    # Frames are drawn off-screen: no display, no sound (pygame asks SDL for both).
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
    try:
        env = gym.make(config.rl.env_id, render_mode="rgb_array")
    except gym.error.DependencyNotInstalled as e:
        raise user_error("Rendering needs the environment's drawing library", "it installed",
                         str(e), f'Install it with: {install_hint("rl")} '
                         '(gymnasium[classic-control] brings pygame).') from None
    frames = []
    try:
        total = play_episode(model, env, seed, frames)
    finally:
        env.close()
    images = [_gif_frame(Image.fromarray(frame), scale) for frame in frames]
    tmp = out + ".tmp.gif"
    images[0].save(tmp, save_all=True, append_images=images[1:], duration=round(1000 / fps),
                   loop=0)
    os.replace(tmp, out)
    return out, total, len(images)


def _gif_frame(image, scale):
    if scale != 1:
        image = image.resize((max(1, round(image.width * scale)),
                              max(1, round(image.height * scale))))
    from PIL import Image

    return image.convert("P", palette=Image.Palette.ADAPTIVE, colors=64)


def check_seed(seed):
    if not 0 <= seed < 2 ** 31:
        raise user_error("--seed is out of range", "an int in [0, 2**31)", f"seed={seed}")


def _check_gif_path(out):
    if not out.lower().endswith(".gif"):
        raise user_error("--out must name a GIF file", "a path ending in .gif",
                         f"out={out!r}", "e.g. --out episode.gif")
    if os.path.exists(out):
        raise user_error("The output file already exists", "a new path (nothing is "
                         "overwritten)", f"out={out!r}", "Choose another --out or remove "
                         "the file first.")
    folder = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(folder):
        raise user_error("The output folder does not exist", "an existing folder",
                         f"out={out!r}", f"Create {folder} first.")
