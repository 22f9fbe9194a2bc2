"""Cosine graph of a layer's units over training: maths, layout, PNG and page."""

import html
import json
import math
import os
import re

import numpy as np
import pytest
from PIL import Image
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from keras_rank.analysis.cosine_graph import (
    DEFAULT_SIGMA,
    DEFAULT_THRESHOLD,
    edge_weights,
    graph_frames,
)
from keras_rank.analysis.graph_render import (
    _embedded_json,
    plot_graph_frame,
    write_graph_page,
)
from keras_rank.analysis.units import cosine_similarities
from keras_rank.core.errors import ConfigError

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


def _clustered(rng, directions=3, per_direction=6, inputs=40, noise=0.05):
    """Units along a few random directions, each with small noise."""
    centres = rng.normal(size=(directions, inputs))
    units = np.repeat(centres, per_direction, axis=0)
    return units + noise * rng.normal(size=units.shape) * np.std(centres)


def _rotations_and_reflections(count=72):
    for angle in np.linspace(0, 2 * math.pi, count, endpoint=False):
        c, s = math.cos(angle), math.sin(angle)
        yield np.array([[c, -s], [s, c]])
        yield np.array([[c, s], [s, -c]])


# ------------------------------------------------------------ similarities
def test_cosine_similarities_match_the_pairwise_formula_and_ignore_row_scale():
    rng = np.random.default_rng(0)
    matrix = rng.normal(size=(6, 4))
    norms = np.linalg.norm(matrix, axis=1)
    direct = np.array([[a @ b for b in matrix] for a in matrix])
    direct /= np.outer(norms, norms)
    np.testing.assert_allclose(cosine_similarities(matrix), direct, atol=1e-12)
    scaled = matrix * rng.uniform(0.01, 100.0, size=(6, 1))
    np.testing.assert_allclose(cosine_similarities(scaled), direct, atol=1e-12)


def test_a_zero_row_has_similarity_zero_with_others_and_one_with_itself():
    similarities = cosine_similarities([[1.0, 2.0], [0.0, 0.0], [3.0, -1.0]])
    np.testing.assert_array_equal(similarities[1], [0.0, 1.0, 0.0])
    np.testing.assert_array_equal(similarities[:, 1], [0.0, 1.0, 0.0])


def test_edge_weights_are_the_gaussian_of_the_cosine_distance():
    rng = np.random.default_rng(1)
    matrix = rng.normal(size=(7, 5))
    sigma = 0.7
    weights = edge_weights(matrix, sigma)
    expected = np.exp(-(1.0 - cosine_similarities(matrix)) / sigma**2)
    np.fill_diagonal(expected, 0.0)
    np.testing.assert_allclose(weights, expected, rtol=1e-12)
    off_diagonal = weights[~np.eye(7, dtype=bool)]
    assert np.all((off_diagonal > 0) & (off_diagonal <= 1))
    # Parallel, orthogonal and opposite rows.
    special = edge_weights([[1.0, 0.0], [3.0, 0.0], [0.0, 2.0], [-1.0, 0.0]], sigma)
    assert special[0, 1] == pytest.approx(1.0)
    assert special[0, 2] == pytest.approx(math.exp(-1 / sigma**2))
    assert special[0, 3] == pytest.approx(math.exp(-2 / sigma**2))
    np.testing.assert_array_equal(np.diag(special), 0.0)


# ------------------------------------------------------------ frames
def test_threshold_and_max_edges_keep_exactly_the_strongest_pairs():
    rng = np.random.default_rng(2)
    matrix = rng.normal(size=(12, 3))  # few inputs: cosines spread over [-1, 1]
    weights = edge_weights(matrix, 1.0)
    pairs = [(weights[i, j], i, j) for i in range(12) for j in range(i + 1, 12)]
    above = sorted([p for p in pairs if p[0] >= 0.6], key=lambda p: -p[0])
    assert 10 < len(above) < len(pairs)
    for max_edges in (0, 5, 1000):
        (frame,) = graph_frames([(1, matrix)], threshold=0.6, max_edges=max_edges)
        assert frame.edges_above_threshold == len(above)
        expected = [(i, j, w) for w, i, j in above[:max_edges]]
        np.testing.assert_allclose(frame.edges, np.reshape(expected, (-1, 3)))
    (everything,) = graph_frames([(1, matrix)], threshold=0.0, max_edges=1000)
    assert len(everything.edges) == len(pairs)


def test_default_threshold_shows_no_edges_at_init_and_many_in_a_clustered_layer():
    rng = np.random.default_rng(3)
    init = rng.normal(size=(60, 784)) * math.sqrt(2 / 784)
    clustered = _clustered(rng, directions=4, per_direction=15, inputs=784, noise=1.0)
    cosines = cosine_similarities(clustered)[np.triu_indices(60, 1)]
    assert 0.3 < np.median(cosines[cosines > 0.2]) < 0.7  # loose clusters
    first, trained = graph_frames([(0, init), (5, clustered)])
    assert first.edges_above_threshold == 0
    assert first.summary()["largest_component"] == 1
    assert abs(first.mean_cosine) < 0.01
    # Every pair inside a cluster and none across: 4 * C(15, 2) edges.
    assert trained.edges_above_threshold == 4 * 15 * 14 // 2
    assert trained.summary()["largest_component"] == 15
    assert np.flatnonzero(trained.in_largest_component).tolist() == list(range(15))


def test_the_same_matrix_twice_gets_the_same_positions():
    matrix = _clustered(np.random.default_rng(4))
    first, second = graph_frames([(1, matrix), (2, matrix)])
    np.testing.assert_allclose(second.positions, first.positions, atol=1e-9)
    np.testing.assert_allclose(first.positions.mean(axis=0), 0.0, atol=1e-12)


def test_consecutive_frames_are_rotated_onto_each_other():
    rng = np.random.default_rng(5)
    matrix = _clustered(rng)
    frames = graph_frames(
        [(epoch, matrix + 0.4 * rng.normal(size=matrix.shape)) for epoch in range(4)]
    )
    for before, after in zip(frames, frames[1:], strict=False):
        moved = np.linalg.norm(after.positions - before.positions)
        best = min(
            np.linalg.norm(after.positions @ turn - before.positions)
            for turn in _rotations_and_reflections()
        )
        assert moved <= best + 1e-9
        # Units stay near their place, far closer than a shuffle would put them.
        shuffled = np.linalg.norm(after.positions[::-1] - before.positions)
        assert moved < 0.5 * shuffled


def test_a_layer_that_shrinks_starts_a_fresh_layout():
    rng = np.random.default_rng(6)
    wide, narrow = _clustered(rng), _clustered(rng, per_direction=5)
    frames = graph_frames([(1, wide), (2, narrow)])
    (alone,) = graph_frames([(2, narrow)])
    assert [frame.units for frame in frames] == [18, 15]
    np.testing.assert_array_equal(frames[1].positions, alone.positions)


def test_frames_label_epochs_and_summarise_as_json():
    matrix = np.array([[1.0, 0, 0], [0.9, 0.1, 0], [0, 1.0, 0], [0, 0.95, 0.1]])
    frames = graph_frames([(0, matrix), (3, 2 * matrix), (None, matrix[:1])])
    assert [frame.label for frame in frames] == [
        "epoch 0 (init)",
        "epoch 3",
        "final weights",
    ]
    summary = frames[1].summary()
    cosines = cosine_similarities(matrix)
    assert summary == {
        "label": "epoch 3",
        "units": 4,
        "edges": 2,
        "edges_above_threshold": 2,
        "largest_component": 2,
        "mean_cosine": pytest.approx(np.mean(cosines[np.triu_indices(4, 1)])),
        "mean_norm": pytest.approx(2 * np.mean(np.linalg.norm(matrix, axis=1))),
        "max_norm": pytest.approx(2.0),
    }
    # Ties between components of 2 go to the one of the lowest unit.
    np.testing.assert_array_equal(frames[1].in_largest_component, [1, 1, 0, 0])
    as_dict = json.loads(json.dumps(frames[1].as_dict(), allow_nan=False))
    assert as_dict["epoch"] == 3
    assert [edge[:2] for edge in as_dict["edges"]] == [[2, 3], [0, 1]]
    assert len(as_dict["positions"]) == len(as_dict["norms"]) == 4
    single = frames[2]
    assert single.mean_cosine is None and single.edges.shape == (0, 3)
    np.testing.assert_array_equal(single.positions, [[0.0, 0.0]])
    json.dumps(single.as_dict(), allow_nan=False)


def test_defaults_join_units_of_cosine_above_1_minus_ln_2():
    assert DEFAULT_SIGMA == 1.0 and DEFAULT_THRESHOLD == 0.5
    for cosine, edges in ((0.32, 1), (0.30, 0)):
        pair = [[1.0, 0.0], [cosine, math.sqrt(1 - cosine**2)]]
        (frame,) = graph_frames([(1, pair)])
        assert len(frame.edges) == edges


@pytest.mark.parametrize(
    ("arguments", "named"),
    [
        (dict(matrices=[]), "matrices"),
        (dict(matrices=[np.ones((2, 2))]), "pair"),
        (dict(matrices=[(1, np.ones(3))]), "matrix"),
        (dict(matrices=[(1, np.ones((0, 3)))]), "matrix"),
        (dict(matrices=[(1, [[1.0, np.nan]])]), "finite"),
        (dict(matrices=[(-1, np.ones((2, 2)))]), "epoch"),
        (dict(matrices=[(1.5, np.ones((2, 2)))]), "epoch"),
        (dict(sigma=0.0), "sigma"),
        (dict(sigma=-1.0), "sigma"),
        (dict(sigma=math.inf), "sigma"),
        (dict(threshold=1.5), "threshold"),
        (dict(threshold=-0.1), "threshold"),
        (dict(max_edges=-1), "max_edges"),
        (dict(max_edges=2.0), "max_edges"),
    ],
)
def test_bad_arguments_raise_config_error_naming_them(arguments, named):
    call = {"matrices": [(1, np.eye(3))], **arguments}
    with pytest.raises(ConfigError, match=named):
        graph_frames(**call)


def test_similarities_and_weights_refuse_bad_input():
    with pytest.raises(ConfigError, match="matrix"):
        cosine_similarities(np.ones((2, 2, 2)))
    with pytest.raises(ConfigError, match=r"sigma: a finite number > 0"):
        edge_weights(np.eye(2), 0.0)
    with pytest.raises(ConfigError, match="frames"):
        write_graph_page([], "unused.html", "t")


# ------------------------------------------------------------ rendering
def _pixels(path):
    """Returns an image's RGB pixels (n x 3 ints) and its number of colours."""
    pixels = np.asarray(Image.open(path).convert("RGB"), int).reshape(-1, 3)
    return pixels, len(np.unique(pixels @ [65536, 256, 1]))


def _graph(seed=7):
    rng = np.random.default_rng(seed)
    init = rng.normal(size=(18, 200)) * 0.5
    return graph_frames(
        [
            (0, init),
            (1, _clustered(rng, inputs=200)),
            (2, _clustered(rng, inputs=200, per_direction=4)),
        ]
    )


def test_plot_graph_frame_draws_nodes_and_edges(tmp_path):
    frames = _graph()
    path = plot_graph_frame(frames[1], tmp_path / "frame.png", max_norm=10.0)
    assert path == tmp_path / "frame.png"
    pixels, colours = _pixels(path)
    red = np.all(np.abs(pixels - (214, 39, 40)) < 8, axis=1)
    assert red.sum() > 100  # the largest component's nodes
    assert colours > 50


def test_graph_page_is_self_contained_with_its_frames_as_json(tmp_path):
    frames = _graph()
    path = write_graph_page(frames, tmp_path / "graph.html", "</script><b>x</b>")
    page = path.read_text(encoding="utf-8")
    assert not re.search(r"https?://|<link|\bsrc=|@import|url\(", page)
    assert "</script><b>" not in page and html.escape("</script><b>x</b>") in page
    block = re.search(
        r'<script id="graph-data" type="application/json">(.*?)</script>', page, re.S
    ).group(1)
    data = json.loads(block)
    assert [frame["label"] for frame in data["frames"]] == [f.label for f in frames]
    assert data["frames"][2]["positions"] == np.round(frames[2].positions, 4).tolist()
    assert '<input type="range" id="frame" min="0" max="2"' in page


def test_embedded_json_cannot_close_the_script_block():
    data = {"label": "</script><script>alert(1)</script> & <!--"}
    text = _embedded_json(data)
    assert "<" not in text and ">" not in text and "&" not in text
    assert json.loads(text) == data


# ------------------------------------------------------------ browser
@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not os.path.exists(path)]
    if missing:
        message = (
            f"{missing} not found: apt-get install chromium chromium-driver "
            "to run the browser test of the cosine graph page"
        )
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--window-size=1000,1100",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium_profile')}",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


def _drawn(driver):
    """Returns the (cx, cy, r) of the page's circles and its number of lines."""
    circles = driver.execute_script(
        "return Array.from(document.querySelectorAll('svg#graph circle'), "
        "(c) => ['cx', 'cy', 'r'].map((name) => Number(c.getAttribute(name))));"
    )
    lines = driver.find_elements(By.CSS_SELECTOR, "svg#graph line")
    return np.reshape(circles, (-1, 3)), len(lines)


def _assert_draws(drawn, frame):
    """The circles sit at the frame's positions (up to one scale) and norms."""
    circles, lines = drawn
    assert len(circles) == frame.units and lines == len(frame.edges)
    expected = np.stack([frame.positions[:, 0], -frame.positions[:, 1]], axis=1)
    scale = np.linalg.lstsq(expected, circles[:, :2] - circles[:, :2].mean(0))[0]
    np.testing.assert_allclose(scale, scale[0, 0] * np.eye(2), atol=1e-3 * scale[0, 0])
    np.testing.assert_allclose(
        circles[:, :2], circles[:, :2].mean(0) + expected @ scale, atol=0.1
    )
    ratios = circles[:, 2] / circles[:, 2].max()
    np.testing.assert_allclose(ratios, frame.norms / frame.norms.max(), atol=1e-3)


@pytest.mark.browser
def test_page_in_chromium_draws_nodes_and_the_slider_moves_them(browser, tmp_path):
    frames = _graph()
    path = write_graph_page(frames, tmp_path / "graph.html", "</script><b>units</b>")
    browser.get(path.as_uri())
    assert browser.title == "</script><b>units</b>"
    assert browser.find_element(By.ID, "label").text == frames[0].label

    screenshot = tmp_path / "page.png"
    assert browser.save_screenshot(str(screenshot))
    pixels, colours = _pixels(screenshot)
    blue = np.all(np.abs(pixels - (31, 119, 180)) < 8, axis=1)
    assert blue.sum() > 500 and colours > 50

    first = _drawn(browser)
    _assert_draws(first, frames[0])
    slider = browser.find_element(By.ID, "frame")
    slider.send_keys(Keys.RIGHT)
    assert slider.get_attribute("value") == "1"
    assert browser.find_element(By.ID, "label").text == frames[1].label
    assert frames[1].summary()["largest_component"] == 6
    second = _drawn(browser)
    assert second[1] > 0 and not np.allclose(second[0], first[0])
    _assert_draws(second, frames[1])
    # One scale for all frames: radius / norm is the same constant.
    np.testing.assert_allclose(
        second[0][:, 2].max() / frames[1].norms.max(),
        first[0][:, 2].max() / frames[0].norms.max(),
        rtol=1e-3,
    )
    slider.send_keys(Keys.RIGHT)
    assert browser.find_element(By.ID, "label").text == frames[2].label
    _assert_draws(_drawn(browser), frames[2])
