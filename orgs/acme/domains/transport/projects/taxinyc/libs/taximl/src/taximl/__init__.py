"""Tip model of NYC taxi trips, used by the `taximodel` ML flow.

Predicts `tip_amount` (dollars, regression) of a trip from what is known when the
fare is settled: distance, duration, fare, tolls, passengers, time of day, boroughs
and payment type. `total_amount` is left out because it includes the tip.

Modules: `features` (Spark feature frame and held-out split), `training`
(scikit-learn pipeline, MLflow run and registration), `registry` (aliases),
`promotion` (the champion/challenger decision), `monitoring` (population stability
index), `tasks` (one function per flow task), `names` (the flow's names via brickops).
"""

__version__ = "0.1.0"
