"""The Gradio web app. It only composes: every decision about prompts, votes, edits and
preferences is made by the engines in promptopt/, and every write goes through storage/.

Entry points: ``promptopt.ui.app.build_app`` (tests inject fakes) and ``promptopt serve``.
"""
