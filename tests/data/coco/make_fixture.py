"""Writes the COCO-format fixture of tests/test_coco.py from the five real MPII sample images.

  python tests/data/coco/make_fixture.py SAMPLE_DIR

SAMPLE_DIR holds the MPII images and test_mpii.json (16 joints in MPII order, joints_vis 1 =
labelled). Each image is re-encoded small (JPEG quality 85) into val2017/ under a COCO-style name
(the MPII number, 12 digits), and annotations/person_keypoints_val2017.json gets one person per
image: MPII's shoulders, elbows, wrists, hips, knees and ankles become COCO's (scaled with the
image), v = 2 where MPII labels the joint and v = 0 elsewhere (MPII has no nose, eyes or ears),
except OCCLUDED below, joints judged hidden on the picture (v = 1). The box spans the labelled
joints and MPII's head top, widened by 8% each side and lowered by 5%; the area (COCO's segment
area, which MPII lacks) is 0.55 of the box. Messy records follow (see MESSY). Tests read only the
files written here.
"""
from __future__ import annotations

import io
import json
import os
import sys

import numpy as np
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', '..', '..'))
from posemachines.core import skeleton  # noqa: E402

# image -> output width (the height follows the aspect ratio)
WIDTHS = {'005808361.jpg': 320, '052475643.jpg': 320, '051423444.jpg': 320,
          '004645041.jpg': 320, '060754485.jpg': 480}
# image -> COCO parts labelled but hidden (v = 1)
OCCLUDED = {'005808361.jpg': ('l_hip', 'r_hip'),      # seated, behind the wheelchair's side
            '051423444.jpg': ('l_wrist',)}            # back to the camera, hand in front of him
NAMES = ('nose', 'left_eye', 'right_eye', 'left_ear', 'right_ear', 'left_shoulder',
         'right_shoulder', 'left_elbow', 'right_elbow', 'left_wrist', 'right_wrist', 'left_hip',
         'right_hip', 'left_knee', 'right_knee', 'left_ankle', 'right_ankle')


def coco_name(mpii_name: str) -> tuple[int, str]:
  image_id = int(mpii_name.split('.')[0])
  return image_id, f'{image_id:012d}.jpg'


def keypoints(points) -> list[float]:
  """{coco part: (x, y, v)} -> COCO's flat 51 numbers."""
  out = []
  for part in skeleton.COCO17_PARTS:
    x, y, v = points.get(part, (0, 0, 0))
    out += [round(float(x), 1), round(float(y), 1), int(v)]
  return out


def annotation(ann_id, image_id, kps, bbox, area=None, iscrowd=0):
  x, y, w, h = bbox
  return {'id': ann_id, 'image_id': image_id, 'category_id': 1, 'iscrowd': iscrowd,
          'bbox': [round(float(v), 1) for v in bbox],
          'area': round(float(0.55 * w * h if area is None else area), 1),
          'segmentation': [[x, y, x + w, y, x + w, y + h, x, y + h]],
          'keypoints': kps, 'num_keypoints': sum(1 for v in kps[2::3] if v > 0)}


def main(sample_dir: str) -> None:
  with open(os.path.join(sample_dir, 'test_mpii.json')) as f:
    records = json.load(f)
  to_coco = skeleton.conversion('mpii', 'coco17')
  os.makedirs(os.path.join(HERE, 'val2017'), exist_ok=True)
  os.makedirs(os.path.join(HERE, 'annotations'), exist_ok=True)
  images, anns, primary = [], [], {}
  for k, record in enumerate(records):
    name = record['image']
    image = Image.open(os.path.join(sample_dir, name)).convert('RGB')
    width = WIDTHS[name]
    f = width / image.width
    height = round(image.height * f)
    image = image.resize((width, height), Image.LANCZOS)
    image_id, file_name = coco_name(name)
    image.save(os.path.join(HERE, 'val2017', file_name), quality=85)
    images.append({'id': image_id, 'file_name': file_name, 'width': width, 'height': height})
    joints = np.asarray(record['joints'], np.float64) * f
    labelled = np.asarray(record['joints_vis']) > 0
    points = {}
    for c, part in enumerate(skeleton.COCO17_PARTS):
      m = to_coco[c]
      if m >= 0 and labelled[m]:
        v = 1 if part in OCCLUDED.get(name, ()) else 2
        points[part] = (*joints[m], v)
    spanned = joints[labelled]
    lo, hi = spanned.min(0), spanned.max(0)
    pad = 0.08 * (hi - lo)
    x1, x2 = lo[0] - pad[0], hi[0] + pad[0]
    y1, y2 = lo[1], hi[1] + 0.05 * (hi[1] - lo[1])
    bbox = (x1, y1, x2 - x1, y2 - y1)
    anns.append(annotation(k + 1, image_id, keypoints(points), bbox))
    primary[name] = (image_id, points, bbox)
  # MESSY: one record per kind of messy annotation, ids 901 on.
  curler_id, curler, (bx, by, bw, bh) = primary['005808361.jpg']
  shifted = {p: (x - 150, y, v) for p, (x, y, v) in curler.items()}
  anns.append(annotation(901, curler_id, keypoints(shifted), (bx - 150, by, bw, bh)))  # a 2nd person
  seated_id = coco_name('052475643.jpg')[0]
  anns.append(annotation(902, seated_id, [0] * 51, (170, 40, 70, 110), iscrowd=1))      # crowd
  anns.append(annotation(903, coco_name('051423444.jpg')[0],                              # no width
                         keypoints({'l_knee': (50, 80, 2), 'r_knee': (52, 82, 2)}), (50, 60, 0, 40)))
  anns.append(annotation(904, coco_name('060754485.jpg')[0], [0] * 51, (10, 10, 30, 60)))  # no kps
  images.append({'id': 999, 'file_name': '000000000999.jpg', 'width': 320, 'height': 180})
  anns.append(annotation(905, 999, keypoints({'nose': (100, 40, 2), 'l_eye': (104, 37, 2)}),
                         (80, 20, 60, 120)))                                              # no image
  anns.append(annotation(906, 12345, keypoints({'nose': (10, 10, 2)}), (0, 0, 20, 20)))  # no record
  border_id = coco_name('004645041.jpg')[0]
  anns.append(annotation(907, border_id, keypoints({                                      # at the edge
      'l_shoulder': (5, 60, 2), 'r_shoulder': (-3, 62, 2), 'l_hip': (10, 100, 3),
      'l_knee': (12, 120, 1)}), (-8, 40, 40, 100)))
  links = [[skeleton.COCO17_PARTS.index(a) + 1, skeleton.COCO17_PARTS.index(b) + 1]
           for a, b in skeleton.COCO17_LIMBS]
  data = {'info': {'description': 'posemachines test fixture in COCO keypoints format'},
          'images': images, 'annotations': anns,
          'categories': [{'id': 1, 'name': 'person', 'supercategory': 'person',
                          'keypoints': list(NAMES), 'skeleton': links}]}
  with open(os.path.join(HERE, 'annotations', 'person_keypoints_val2017.json'), 'w') as f:
    json.dump(data, f, indent=1)


if __name__ == '__main__':
  main(sys.argv[1])
