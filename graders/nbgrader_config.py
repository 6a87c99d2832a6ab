"""nbgrader settings for Double Edge. ``doubleedge grade`` copies this into the course folder."""

c = get_config()  # noqa: F821 (provided by nbgrader)

c.CourseDirectory.course_id = "double-edge"
# Scans run inside the notebook: give cells time, but never unlimited (None).
c.Execute.timeout = 300
c.Execute.interrupt_on_timeout = True
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"
