"""Quick start: FAME in front of a Kornia video augmentation pipeline.

Run: python examples/drop_in.py
"""

import kornia.augmentation as K
import torch
from torch import nn

from fame_aug import FAME
from fame_aug.data import moving_object_clips, to_float_clips

# A batch of clips: float in [0, 1], laid out (B, C, T, H, W). Here: generated moving objects.
clips, _ = moving_object_clips(num_clips=8, num_frames=16, size=112, seed=0)
video = to_float_clips(clips)  # (8, 3, 16, 112, 112)

augment = nn.Sequential(
    # FAME first: it needs whole clips (motion) and raw colors (its color model).
    FAME(beta=0.5, mode="official", p=1.0),
    # Then the photometric augmentations, one draw per clip shared by its frames.
    K.VideoSequential(
        K.ColorJitter(0.4, 0.4, 0.4, 0.1, p=0.8),
        K.RandomGrayscale(p=0.2),
        K.RandomGaussianBlur((11, 11), (0.1, 2.0), p=0.5),
        data_format="BCTHW",
        same_on_frame=True,
    ),
)
if torch.cuda.is_available():
    augment, video = augment.cuda(), video.cuda()

out = augment(video)
fame = augment[0]
print(f"input {tuple(video.shape)} -> output {tuple(out.shape)} {out.dtype} on {out.device}")
print(f"foreground share per clip: {fame._params['mask'].float().mean(dim=(1, 2)).tolist()}")
print(f"background of clip b taken from clip: {fame._params['mix_pairs'].tolist()}")

# Replay the same draw on the same clips (e.g. to augment a label map alike): bit for bit.
assert torch.equal(fame(video, params=fame._params), fame(video, params=fame._params))
