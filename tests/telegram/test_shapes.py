"""The shape asked for with ``--ar`` survives the quality profile, through the real aiogram stack
and the strict fake Bot API: the picture delivered (its PNG's own size) is within 5 % of the ratio
at every profile (``--ar 16:9 --q fast`` once gave 512x256, which is 2:1)."""

from __future__ import annotations

from tests.telegram.helpers import Chat, png_size


async def test_the_ratio_asked_for_is_the_pictures_at_every_profile(telegram, start_service):
    # A small default size (512x384, the tests' own) is where two steps of 128 could add up:
    # 16:9 is 896x512 there (7:4), and 7:4 alone would become 640x384 (5:3) at the fast profile.
    await start_service(default_width=512, default_height=384)
    for user, ratio in enumerate(("16:9", "9:16", "4:3"), start=411):
        me = Chat(telegram, user)  # one user a ratio: each stays well within the per-minute limit
        w, h = map(int, ratio.split(":"))
        for quality in ("fast", "balanced", "quality"):
            me.send(f"a lighthouse --ar {ratio} --q {quality}")
            [photo] = await me.photo(timeout=30)
            width, height = png_size(photo.files.get("photo") or photo.files["document"])
            assert abs(width / height / (w / h) - 1) <= 0.05, (ratio, quality, width, height)
            assert width % 128 == 0 and height % 128 == 0
