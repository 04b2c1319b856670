"""Compare engine: dueling-bandit prompt search from pairwise votes (after APOHF).

``CompareService`` is what callers use (docs/engine-api.md); ``selection`` holds the pair rules
(``default``, ``apohf``, ``random``), ``model`` the utility models, ``proposals`` the LLM-written
candidates, ``responses`` the response-level ranker and ``bench`` the ``promptopt bench compare``
command.
"""

from promptopt.compare.service import BestReport, CompareService, Duel, LeaderboardRow

__all__ = ["BestReport", "CompareService", "Duel", "LeaderboardRow"]
