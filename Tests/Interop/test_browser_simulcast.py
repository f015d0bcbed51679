"""Simulcast through headless Chromium (issue 6): the web client publishes its camera in three
layers (rids q, h, f at 1/4, 1/2 and full size); a viewer gets the layer its tile needs — a large
window the full layer, a small one a lower layer — switching on keyframes; the layers nobody
receives are paused at the publisher and resumed when someone needs them again."""
import pytest

from test_browsers_chromium import Browser, receiving_from_everyone, wait_for


def frame_width(viewer, publisher_id):
    return viewer.stats().get(publisher_id, {}).get("frameWidth", 0)


def camera_layers(browser):
    return browser.driver.execute_async_script(
        "const done = arguments[arguments.length - 1]; window.parley.cameraLayers().then(done, () => done({}));")


@pytest.mark.timeout(180)
def test_each_viewer_gets_the_layer_its_tile_needs_and_unused_layers_pause(parley):
    publisher, viewer = Browser("simulcast-publisher"), Browser("simulcast-viewer")
    try:
        publisher.open(f"{parley.url}/m/layers?name=Publisher")
        assert wait_for(publisher.participant_id, 20)
        viewer.driver.set_window_size(1920, 1200)
        viewer.open(f"{parley.url}/m/layers?name=Viewer")
        assert wait_for(viewer.participant_id, 20)
        publisher_id = publisher.participant_id()
        assert wait_for(lambda: receiving_from_everyone(viewer, [publisher_id]), 40)

        # The publisher sends three layers, a quarter, a half and the whole of its 1280×720 camera.
        # A layer nobody needs may be paused before its first frame (the viewer's large tile takes
        # the full layer at once), so a layer counts once it is encoded at its size or paused unused.
        expected = {"q": 320, "h": 640, "f": 1280}

        def settled(layers):
            if set(layers) != set(expected) or layers["f"]["frameWidth"] != 1280:
                return None
            for rid, layer in layers.items():
                encoded_at_size = layer["frameWidth"] == expected[rid]
                paused_unused = layer["active"] is False and layer["framesEncoded"] == 0
                if not (encoded_at_size or paused_unused):
                    return None
            return layers
        layers = wait_for(lambda: settled(camera_layers(publisher)), 30)
        assert layers, camera_layers(publisher)

        # A large window (the tile is wider than 640 pixels): the full layer.
        assert wait_for(lambda: frame_width(viewer, publisher_id) == 1280, 20), frame_width(viewer, publisher_id)
        large = frame_width(viewer, publisher_id)
        # A small window: a lower layer, and the full one, which nobody receives now, is paused.
        viewer.driver.set_window_size(360, 300)
        assert wait_for(lambda: 0 < frame_width(viewer, publisher_id) < large, 20), frame_width(viewer, publisher_id)
        small = frame_width(viewer, publisher_id)
        assert wait_for(lambda: camera_layers(publisher).get("f", {}).get("active") is False, 10), camera_layers(publisher)
        paused_at = camera_layers(publisher)["f"]["framesEncoded"]
        before = viewer.stats()[publisher_id]["framesDecoded"]
        assert wait_for(lambda: viewer.stats()[publisher_id]["framesDecoded"] > before + 30, 10), "video stopped after the switch"
        assert camera_layers(publisher)["f"]["framesEncoded"] <= paused_at + 2, "the paused layer is still encoded"
        # Large again: the full layer resumes and comes back.
        viewer.driver.set_window_size(1920, 1200)
        assert wait_for(lambda: camera_layers(publisher).get("f", {}).get("active") is True, 10)
        assert wait_for(lambda: frame_width(viewer, publisher_id) == 1280, 20)
        print(f"measured: viewer frame width {large} (1920x1200 window) -> {small} (360x300 window) -> {frame_width(viewer, publisher_id)}; "
              f"layer f paused while unused")
    finally:
        for browser in (publisher, viewer):
            browser.save_console()
            browser.quit()
