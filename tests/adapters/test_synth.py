from __future__ import annotations

import numpy as np

from tailorkit.adapters.synth import load_photo_textures, render_scenes


def test_scenes_have_exact_consistent_labels() -> None:
    tex = load_photo_textures("procedural")
    s = render_scenes(12, 32, 3, tex)
    assert s.images.shape == (12, 32, 32, 3) and s.images.dtype == np.uint8
    assert np.allclose(np.linalg.norm(s.normals, axis=-1), 1, atol=1e-4)
    # visible surfaces face the camera: normal . view ray < 0 is implied by z < 0 except near the image border
    assert (s.normals[..., 2] < 0).mean() > 0.9
    for i in range(12):
        has_cyl = (s.semseg[i] == 4).any()
        if has_cyl:
            assert ((s.parts[i] > 0) == (s.semseg[i] == 4)).all()
        else:
            assert (s.parts[i] == 255).all()
        assert (s.semseg[i][s.saliency[i] > 0] >= 2).all() and s.saliency[i].any()
        # every class boundary is an edge
        sem = s.semseg[i]
        change = np.zeros_like(sem, bool)
        change[:, 1:] |= sem[:, 1:] != sem[:, :-1]
        assert (s.edges[i][change] == 1).all()
    assert (s.depth > 0).all()
    assert set(np.unique(s.semseg)) <= {0, 1, 2, 3, 4}


def test_floor_normals_and_depth_follow_the_camera_geometry() -> None:
    s = render_scenes(4, 32, 0, load_photo_textures("procedural"), pitch_deg=20.0)
    floor = s.semseg == 1
    pitch = np.deg2rad(20.0)
    assert np.allclose(s.normals[floor], [0, np.cos(pitch), -np.sin(pitch)], atol=1e-5)
    # on the floor, rows lower in the image are nearer
    col = s.depth[0][:, 16][floor[0][:, 16]]
    assert (np.diff(col) < 0).all()


def test_scenes_are_seeded_and_prefix_stable() -> None:
    tex = load_photo_textures("procedural")
    a, b = render_scenes(3, 32, 7, tex), render_scenes(5, 32, 7, tex)
    assert np.array_equal(a.images, b.images[:3]) and np.array_equal(a.semseg, b.semseg[:3])
    assert not np.array_equal(render_scenes(3, 32, 8, tex).images, a.images)


def test_photo_textures_are_real_photos() -> None:
    tex = load_photo_textures("photos")
    assert tex.shape == (10, 128, 128, 3) and 0.2 < tex.mean() < 0.8 and tex.std() > 0.1
