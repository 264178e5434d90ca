"""Benchmark metrics, visibility, official file formats (MPII .mat, COCO keypoint results) and
multi-view inference."""
