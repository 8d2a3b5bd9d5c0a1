"""Layout and event wiring of the page; all work is done by `app.handlers`."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gradio as gr

from app import compose, engine, handlers, players, session, slides
from app.inputs import DOWNSCALES, InputError
from app.model_slot import ModelSlot
from app.settings import CLIP_SUFFIXES, GPU_MEMORY_NOTE, Settings, sample_clips

CODEC_SLOTS = 4
CSS = ("#s2vc-players video{max-height:260px} .s2vc-error{color:#b00020} "
       "#s2vc-model-note{border-left:4px solid #e0a000;padding-left:8px} "
       # a player's label sits above its picture (Gradio lays it over the picture, where a long one wraps over it)
       "#s2vc-players [data-testid=block-label]{position:static;max-width:100%;white-space:normal}")


def build(settings: Settings, slot: ModelSlot) -> gr.Blocks:
    """The whole page; `launch_options()` gives what `launch` needs (head script, CSS, allowed paths)."""
    limits, root = settings.limits, settings.sessions_root
    choices = engine.codec_choices()
    metric_info = engine.metric_choices()
    metrics = [m.name for m in metric_info if m.reason is None]
    samples = list(sample_clips())

    def session_of(request: gr.Request) -> Path:
        return session.session_dir(root, request.session_hash or "anonymous")

    with gr.Blocks(title="S2VC Studio", delete_cache=(600, settings.session_ttl_s)) as demo:
        session_state = gr.State(None, time_to_live=settings.session_ttl_s, delete_callback=session.close)
        clip_state, run_state = gr.State(None), gr.State(None)
        gr.Markdown("# S2VC Studio\nUpload a clip, pick a target bitrate, and compare S2VC with HEVC and VVC.")
        model_md = gr.Markdown(handlers.model_markdown(slot), elem_id="s2vc-model")
        with gr.Accordion("Open a saved run (the .zip this page exports; no model needed)", open=False):
            open_file = gr.File(label="saved run (.zip)", file_types=[".zip"], type="filepath", elem_id="s2vc-open")
            open_choice = gr.Dropdown([], label="the file holds several runs: open this one", visible=False,
                                      elem_id="s2vc-open-run")

        with gr.Row():
            with gr.Column():
                gr.Markdown("### 1. Clip")
                sample = gr.Dropdown(samples, value=samples[0] if samples else None,
                                     label="sample clip (used while nothing is uploaded)")
                upload = gr.File(label="upload (" + ", ".join(CLIP_SUFFIXES) + ")", file_types=list(CLIP_SUFFIXES),
                                 type="filepath", elem_id="s2vc-upload")
                with gr.Accordion("raw yuv420p (.yuv) size and fps", open=False):
                    with gr.Row():
                        raw_w = gr.Number(416, label="width", precision=0)
                        raw_h = gr.Number(240, label="height", precision=0)
                        raw_fps = gr.Number(30, label="fps")
                with gr.Row():
                    start = gr.Number(0, label="start frame", precision=0, minimum=0)
                    count = gr.Number(limits.max_frames, label="frames (at most)", precision=0, minimum=1,
                                      maximum=limits.max_frames, elem_id="s2vc-count")
                    downscale = gr.Dropdown(list(DOWNSCALES), value="original size", label="downscale")
                memory = f" {GPU_MEMORY_NOTE}." if limits.max_pixels >= 1920 * 1080 else ""
                gr.Markdown(f"Limits: {limits.describe()}.{memory}")
                load_btn = gr.Button("Load clip")
                clip_md = gr.Markdown(elem_id="s2vc-clip")
            with gr.Column():
                gr.Markdown("### 2. Run")
                kbps = gr.Number(100, label="target bitrate (kbps)", minimum=1, elem_id="s2vc-kbps")
                bpp_md = gr.Markdown(handlers.bpp_text(None, None))
                sweep = gr.Checkbox(False, label="sweep: also run these bitrates (full RD curves, BD-rates)")
                sweep_text = gr.Textbox("50, 200, 400", label="sweep bitrates (kbps)", show_label=True)
                codec_box = gr.CheckboxGroup([(c.label, c.name) for c in choices],
                                             value=[c.name for c in choices if c.name != "svtav1"], label="codecs",
                                             elem_id="s2vc-codecs")
                preset_boxes = {c.name: gr.Dropdown(list(c.presets), value=c.default_preset,
                                                    label=f"{c.label} preset") for c in choices if c.name != "s2vc"}
                unusable = [f"{c.label}: {c.reason}" for c in choices if c.reason]
                if unusable:
                    gr.Markdown("Not available here: " + "; ".join(unusable))
                metric_box = gr.CheckboxGroup(
                    [(m, m) for m in metrics], value=[m for m in engine.DEFAULT_METRICS if m in metrics],
                    label="metrics (the deep and temporal ones take about a second per frame on a CPU)",
                    elem_id="s2vc-metrics")
                run_btn = gr.Button("Run", variant="primary", elem_id="s2vc-run")
                status_md = gr.Markdown(elem_id="s2vc-status")
                match_btn = gr.Button("Run the baselines at S2VC's real bitrate", visible=False, size="sm",
                                      elem_id="s2vc-match")

        gr.Markdown("### Players (in sync; labels give the bitrate measured on each codec's own bitstream)")
        with gr.Row(elem_id="s2vc-players"):
            original_video = gr.Video(label="original", interactive=False, loop=True)
            videos = [gr.Video(visible=False, interactive=False, loop=True) for _ in range(CODEC_SLOTS)]
        play_btn = gr.Button("Play all from the start", size="sm")
        model_note = gr.Markdown(elem_id="s2vc-model-note")

        gr.Markdown("### Frame comparison")
        with gr.Row():
            a_box = gr.Dropdown([handlers.ORIGINAL], value=handlers.ORIGINAL, label="A (left)")
            b_box = gr.Dropdown([handlers.ORIGINAL], value=handlers.ORIGINAL, label="B (right)")
            frame = gr.Slider(0, 1, value=0, step=1, label="frame", elem_id="s2vc-frame")
        with gr.Row():
            zoom = gr.Dropdown(list(handlers.ZOOMS), value=4, label="zoom")
            center_x = gr.Slider(0, 1, value=0.5, step=0.01, label="crop centre x")
            center_y = gr.Slider(0, 1, value=0.5, step=0.01, label="crop centre y")
        with gr.Row():
            slider_full = gr.ImageSlider(label="A | B", elem_id="s2vc-slider", type="numpy")
            slider_crop = gr.ImageSlider(label="zoomed crop A | B", type="numpy")
            diff_image = gr.Image(label="difference |A-B| x4", interactive=False)

        gr.Markdown("### Rate-distortion-perception")
        with gr.Row(elem_id="s2vc-plots"):  # two per row on a wide page; hidden until measured
            rd_plots = {m: gr.Plot(label=m, visible=False, min_width=560) for m in metrics}
        with gr.Accordion("metric definitions and the ones that cannot run here", open=False):
            gr.Markdown("\n".join(f"- **{m.name}** ({'higher' if m.higher_is_better else 'lower'} is better): "
                                   f"{m.variant}" + (f" — *not available: {m.reason}*" if m.reason else "")
                                   for m in metric_info))
        per_frame_metric = gr.Dropdown(metrics, value=metrics[0] if metrics else None, label="per-frame metric")
        per_frame_plot = gr.Plot(label="per frame")

        gr.Markdown("### Results")
        table = gr.Dataframe(handlers.results_table(None), label="results", interactive=False, wrap=True,
                             elem_id="s2vc-table")
        bd = gr.Dataframe(handlers.bd_table(None), label="BD-rate against x265 (negative = fewer bits for the "
                          "same quality)", interactive=False, wrap=True, elem_id="s2vc-bd")
        conditions_md = gr.Markdown()

        gr.Markdown("### Downloads")
        with gr.Row():
            zip_btn = gr.DownloadButton("Everything (.zip)", interactive=False, elem_id="s2vc-zip")
            report_btn = gr.DownloadButton("HTML report", interactive=False)
        files = gr.File(label="result files", file_count="multiple", interactive=False)
        with gr.Accordion("Slides: media for a talk", open=False):
            gr.Markdown("16:9 media of the clip shown: H.264 MP4s (play in PowerPoint, Keynote and browsers) with "
                        "each tile labelled \"codec · preset · kbps\", a wipe video, a PNG of the zoomed crop above "
                        "(frame, centre and zoom as set there) with the metrics chosen here, and the RD plots as PNG "
                        "and SVG.")
            with gr.Row():
                layout_box = gr.Radio(list(compose.LAYOUTS), value="grid", label="side-by-side layout")
                size_box = gr.Radio(list(compose.RESOLUTIONS), value=slides.DEFAULT_SIZE, label="slide size",
                                    elem_id="s2vc-slide-size")
                wipe_box = gr.Dropdown([], label="wipe video: original | this codec")
                crop_metrics = gr.CheckboxGroup([], label="crop figure: one or two metrics",
                                                elem_id="s2vc-crop-metrics")
            slides_btn = gr.Button("Export slide media", interactive=False, elem_id="s2vc-slides-btn")
            slide_files = gr.File(label="slide media", file_count="multiple", interactive=False,
                                  elem_id="s2vc-slides")

        # ------------------------------------------------------------ events
        clip_inputs = [upload, sample, raw_w, raw_h, raw_fps, start, count, downscale]
        clip_outputs = [clip_state, clip_md, original_video, bpp_md, frame]
        result_outputs = [*videos, a_box, b_box, *rd_plots.values(), table, bd, conditions_md, model_note, match_btn,
                          wipe_box]
        cleared = [*result_outputs, per_frame_plot, slider_full, slider_crop, diff_image, zip_btn, report_btn, files,
                   slides_btn, slide_files]

        def on_load(request: gr.Request) -> tuple[str, str]:
            session.sweep(root, settings.session_ttl_s)
            return str(session_of(request)), handlers.model_markdown(slot)

        def on_unload(request: gr.Request) -> None:
            session.close(root / str(request.session_hash))

        def load_model() -> str:
            slot.get()
            return handlers.model_markdown(slot)

        def on_clip(up, smp, rw, rh, rfps, st, n, ds, value, current, request: gr.Request,
                    progress: gr.Progress = gr.Progress()) -> tuple:
            progress(0.1, desc="decoding the clip")
            if up:
                session.note_upload(session_of(request), up)
            try:
                clip = handlers.prepare_clip(up, smp, rw, rh, rfps, st, n, ds, limits, session_of(request), current)
            except InputError as exc:
                return None, _error(str(exc)), None, handlers.bpp_text(None, None), gr.update()
            except Exception as exc:  # anything else the decoder throws is still the input's fault here
                return None, _error(f"This clip could not be read ({type(exc).__name__}: {exc})."), None, \
                    handlers.bpp_text(None, None), gr.update()
            return clip, clip["description"], clip["preview"], handlers.bpp_text(value, clip), \
                gr.update(maximum=clip["count"] - 1, value=0)

        def on_clip_for_run(up, smp, rw, rh, rfps, st, n, ds, value, current, request: gr.Request,
                            progress: gr.Progress = gr.Progress()) -> tuple:
            if current and current.get("opened"):  # a saved run's clip is coded again as it is
                return current, gr.update(), gr.update(), gr.update(), gr.update()
            return on_clip(up, smp, rw, rh, rfps, st, n, ds, value, current, request, progress)

        def on_reset() -> list:
            return [None, "", *_results_view(None, metrics), None, None, None, None,
                    gr.update(value=None, interactive=False), gr.update(value=None, interactive=False), None,
                    gr.update(interactive=False), None]

        def on_reset_for_run() -> list:
            return [None, "Starting the run… (it waits here while another page's run is coding)",
                    *on_reset()[2:]]

        def on_reset_choices() -> tuple:  # before the baselines are coded again, whose old results leave the lists
            return tuple(gr.update(choices=[handlers.ORIGINAL], value=handlers.ORIGINAL) for _ in range(2))

        def on_run(data: dict, request: gr.Request, progress: gr.Progress = gr.Progress()) -> Iterator[list]:
            clip, value, do_sweep, text, codecs, chosen = (
                data[c] for c in (clip_state, kbps, sweep, sweep_text, codec_box, metric_box))
            presets = {name: data[box] for name, box in preset_boxes.items()} | {"s2vc": "default"}
            if not clip:
                yield [None, _error("Load a valid clip first (see the message under the clip settings)."),
                       *_results_view(None, metrics)]
                return
            rates = None
            try:
                rates = handlers.parse_rates(value, do_sweep, text)
            except InputError as exc:
                yield [None, _error(str(exc)), *_results_view(None, metrics)]
                return
            yield from _stream(handlers.run_comparison(clip, rates, list(codecs), presets, list(chosen),
                                                       session_of(request), slot, lambda f, d: progress(f, desc=d)))

        def on_match(state: dict, request: gr.Request, progress: gr.Progress = gr.Progress()) -> Iterator[list]:
            yield from _stream(handlers.match_s2vc(state, session_of(request), lambda f, d: progress(f, desc=d)),
                               state)

        def _stream(runs: Iterator[dict], state: dict | None = None) -> Iterator[list]:
            shown = None
            try:
                for state in runs:  # a step that changed no result updates the status only
                    view = _shown(state)
                    yield [state, _status(state), *(_results_view(state, metrics) if view != shown
                                                    else [gr.update()] * len(result_outputs))]
                    shown = view
            except InputError as exc:
                yield [state, _error(str(exc)), *_results_view(state, metrics)]
            except Exception as exc:  # the page gets the reason, never a stack trace
                yield [state, _error(f"The run stopped: {type(exc).__name__}: {exc}"), *_results_view(state, metrics)]

        def on_open(path: str | None, choice: str | None, request: gr.Request,
                    progress: gr.Progress = gr.Progress()) -> list:
            names = handlers.saved_run_names(path) if path else []
            if len(names) > 1 and choice not in names:  # a suite: the user picks a run first
                updates = [gr.update()] * len(opened)
                updates[len(clip_outputs) + 1] = f"{len(names)} runs in this file: pick one."
                return updates + [gr.update(choices=names, value=None, visible=True)]
            return _open(path, choice if len(names) > 1 else None, request, progress) + [
                gr.update(visible=len(names) > 1)]

        def on_open_initial(request: gr.Request, progress: gr.Progress = gr.Progress()) -> list:
            return _open(settings.open_path, settings.open_sequence, request, progress)

        def _open(path: str | None, sequence: str | None, request: gr.Request, progress: gr.Progress) -> list:
            if not path:
                return [gr.update()] * len(opened)
            progress(0.1, desc="opening the saved run")
            if path != settings.open_path:  # an upload: it goes with the session
                session.note_upload(session_of(request), path)
            try:
                clip, state = handlers.open_run(path, session_of(request), sequence)
            except InputError as exc:
                updates = [gr.update()] * len(opened)
                updates[len(clip_outputs) + 1] = _error(f"Cannot open it: {exc}")
                return updates
            return [clip, clip["description"], clip["preview"], handlers.bpp_text(state["primary_kbps"], clip),
                    gr.update(maximum=clip["count"] - 1, value=0), state, _status(state),
                    *_results_view(state, metrics), *_settings_view(state)]

        def _settings_view(state: dict) -> list:
            """The run's settings back on the page (target, sweep, codecs, presets, metrics)."""
            made = handlers.run_settings(state)
            offered = {c.name: c for c in choices}
            return [made["kbps"], bool(made["sweep"]), ", ".join(f"{k:g}" for k in made["sweep"]) or gr.update(),
                    [c for c in made["codecs"] if c in offered], [m for m in made["metrics"] if m in metrics],
                    *[gr.update(value=made["presets"][name]) if made["presets"].get(name) in offered[name].presets
                      else gr.update() for name in preset_boxes]]

        def on_finish(state, metric, chosen) -> list:
            try:
                exports = handlers.export_files(state)
            except Exception as exc:  # results stay on the page even when files cannot be written
                exports = {"files": [], "zip": None, "report": None,
                           "messages": [f"downloads could not be written ({type(exc).__name__}: {exc})"]}
            ready = bool(exports["files"])
            choices_ab = handlers.comparison_choices(state)
            b_value = choices_ab[1] if len(choices_ab) > 1 else handlers.ORIGINAL
            done = state and state["done"]  # a stopped run keeps its error message
            status = _status(state) + "".join(f"\n- ⚠️ {m}" for m in exports["messages"]) if done else gr.update()
            return [status, gr.update(value=exports["zip"], interactive=ready),
                    gr.update(value=exports["report"], interactive=ready), exports["files"] or None,
                    gr.update(choices=choices_ab, value=handlers.ORIGINAL), gr.update(choices=choices_ab,
                                                                                       value=b_value),
                    handlers.per_frame_figure(state, metric), handlers.model_markdown(slot),
                    gr.update(interactive=ready), _crop_metric_choices(state, chosen)]

        def _crop_metric_choices(state: dict | None, chosen: list[str] | None) -> Any:
            """The run's measured metrics by plain name; the ticked ones stay ticked, else the first two."""
            measured = handlers.metrics_in(state)
            info = state["results"]["metrics"] if state else {}
            kept = [m for m in chosen or [] if m in measured] or measured[:slides.CROP_METRICS]
            return gr.update(choices=[(engine.plain_name(m, info[m]["variant"]), m) for m in measured],
                             value=kept[:slides.CROP_METRICS])

        def on_view(clip, state, a, b, index, cx, cy, z, request: gr.Request) -> tuple:
            if not clip:
                return None, None, None
            try:
                pair, crop, diff = handlers.frame_views(clip, state, a, b, int(index), cx, cy, int(z))
            except InputError:
                return None, None, None
            views = handlers.save_views(session_of(request), {"a": pair[0], "b": pair[1], "crop_a": crop[0],
                                                              "crop_b": crop[1], "diff": diff})
            return (views["a"], views["b"]), (views["crop_a"], views["crop_b"]), views["diff"]

        def on_slides(state, layout, size, wipe_key, chosen, index, cx, cy, z,
                      progress: gr.Progress = gr.Progress()) -> Any:
            if not handlers.player_records(state):
                return None
            if not 1 <= len(chosen or []) <= slides.CROP_METRICS:
                raise gr.Error("Tick one or two metrics for the crop figure.")
            folder = Path(state["dir"]) / "slides"
            progress(0.1, desc="side-by-side video")
            made = [slides.side_by_side(state, layout, folder / f"side_by_side_{layout}.mp4", size)]
            key = wipe_key or handlers.player_records(state)[0]["key"]
            progress(0.4, desc="wipe video")
            made.append(slides.wipe_video(state, key, folder / "wipe.mp4", size))
            made.append(slides.crop_figure(state, int(index), cx, cy, int(z), list(chosen),
                                           folder / f"crop_frame{int(index)}.png", size))
            progress(0.7, desc="RD plots")
            made += slides.rd_slides(state, folder, size)
            return [str(p) for p in made]

        finish_outputs = [status_md, zip_btn, report_btn, files, a_box, b_box, per_frame_plot, model_md, slides_btn,
                          crop_metrics]
        finish_inputs = [run_state, per_frame_metric, crop_metrics]
        view_inputs = [clip_state, run_state, a_box, b_box, frame, center_x, center_y, zoom]
        view_outputs = [slider_full, slider_crop, diff_image]
        run_settings = [kbps, sweep, sweep_text, codec_box, metric_box, *preset_boxes.values()]
        opened = [*clip_outputs, run_state, status_md, *result_outputs, *run_settings]
        load = demo.load(on_load, None, [session_state, model_md])
        if settings.open_path:  # the model loads when a run needs it, not to show a saved one
            load.then(on_open_initial, None, opened, show_progress_on=[status_md]).then(
                on_finish, finish_inputs, finish_outputs).then(on_view, view_inputs, view_outputs)
        else:
            load.then(load_model, None, model_md, concurrency_limit=settings.concurrency, concurrency_id="codec")
        demo.unload(on_unload)
        gr.on([load_btn.click, upload.upload, upload.clear, sample.change], on_clip,
              clip_inputs + [kbps, clip_state], clip_outputs, show_progress_on=[clip_md], trigger_mode="always_last")
        kbps.change(handlers.bpp_text, [kbps, clip_state], bpp_md)
        gr.on([open_file.upload, open_choice.input], on_reset, None, [run_state, status_md, *cleared]).then(
            on_open, [open_file, open_choice], [*opened, open_choice], show_progress_on=[status_md]).then(
            on_finish, finish_inputs, finish_outputs).then(on_view, view_inputs, view_outputs)
        # the old results (and the A/B lists' values with them) go first: an event that the clip's frame box fires
        # then sends values that the lists still hold, never a codec that the reset has taken out of them
        run_btn.click(on_reset_for_run, None, [run_state, status_md, *cleared]).then(
            on_clip_for_run, clip_inputs + [kbps, clip_state], clip_outputs).then(
            on_run, {clip_state, kbps, sweep, sweep_text, codec_box, metric_box, *preset_boxes.values()},
            [run_state, status_md, *result_outputs], concurrency_limit=settings.concurrency,
            concurrency_id="codec", show_progress="minimal", show_progress_on=[status_md]).then(
            on_finish, finish_inputs, finish_outputs).then(on_view, view_inputs, view_outputs)
        match_btn.click(on_reset_choices, None, [a_box, b_box]).then(
            on_match, run_state, [run_state, status_md, *result_outputs], concurrency_limit=settings.concurrency,
            concurrency_id="codec", show_progress="minimal", show_progress_on=[status_md]).then(
            on_finish, finish_inputs, finish_outputs).then(on_view, view_inputs, view_outputs)
        gr.on([a_box.change, b_box.change, frame.change, zoom.change, center_x.release, center_y.release],
              on_view, view_inputs, view_outputs, trigger_mode="always_last")
        per_frame_metric.change(handlers.per_frame_figure, [run_state, per_frame_metric], per_frame_plot)
        slides_btn.click(on_slides, [run_state, layout_box, size_box, wipe_box, crop_metrics, frame, center_x,
                                     center_y, zoom], slide_files,
                         concurrency_limit=settings.concurrency, concurrency_id="codec")
        play_btn.click(None, js=players.PLAY_ALL_JS)
    return demo


def _error(message: str) -> str:
    return f"<span class='s2vc-error'>⚠️ {message}</span>"


def _shown(state: dict) -> tuple:
    """What the result views show of a run state: a step that changes none of it needs no new views."""
    return state["done"], tuple((r["key"], r.get("decoder_check")) for r in handlers.records(state))


def _status(state: dict) -> str:
    done = "Done." if state["done"] else "Running…"
    lines = [f"{done} {len(handlers.records(state))} result(s)."]
    if not state["done"] and state.get("activity"):  # the run's progress, in the text (no bar over it)
        lines[0] += f" {state['steps']}; now: {state['activity']}."
    if state.get("conditions", {}).get("opened from"):
        lines[0] = f"Opened {state['conditions']['opened from']}: {len(handlers.records(state))} result(s)."
    if any(r.get("decoder_check") == "pending" for r in handlers.records(state)) and not state["done"]:
        lines.append("- S2VC is shown from its encoder's reconstructions; its decoder check (bit-exact, decode time) "
                     "follows.")
    hint = ": press \"Run the baselines at S2VC's real bitrate\" to compare at equal rate" \
        if handlers.can_match(state) else ""
    lines += [f"- ⚠️ {note}{hint}" for note in handlers.off_target_notes(state)]
    return "\n".join(lines + [f"- ⚠️ {m}" for m in state["messages"]])


def _results_view(state: dict | None, metrics: list[str]) -> list[Any]:
    """Updates for the players, A/B choices, RD plots, tables, conditions, the model note, the match button and
    the wipe choices from a run state (None clears them)."""
    records = handlers.player_records(state)
    video_updates = []
    for index in range(CODEC_SLOTS):
        if index < len(records):
            r = records[index]
            video_updates.append(gr.update(value=r["preview"], label=handlers.tile_label(r), visible=True))
        else:
            video_updates.append(gr.update(value=None, visible=False))
    choices_ab = handlers.comparison_choices(state)
    figures = handlers.rd_figures(state)
    plot_updates = [gr.update(value=figures[m], visible=True) if m in figures else gr.update(value=None,
                                                                                              visible=False)
                    for m in metrics]
    keys = [r["key"] for r in records]
    # one update each: Gradio takes the value out of an update dict as it applies it, so a shared one reaches B bare
    ab_updates = [gr.update(choices=choices_ab) if state else gr.update(choices=choices_ab, value=handlers.ORIGINAL)
                  for _ in range(2)]
    return [*video_updates, *ab_updates, *plot_updates,
            handlers.results_table(state), handlers.bd_table(state), handlers.conditions_markdown(state),
            handlers.demo_model_note(state), gr.update(visible=handlers.can_match(state)),
            gr.update(choices=keys, value=next((k for k in keys if k.startswith("S2VC")), keys[0] if keys else None))]


def launch_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for `demo.launch`: the player sync script, CSS and the session folder root."""
    settings.sessions_root.mkdir(parents=True, exist_ok=True)
    return {"head": players.SYNC_JS, "css": CSS, "allowed_paths": [str(settings.temp_root)]}
