-- Gold: what the business reads, recomputed from silver on every update.

CREATE OR REFRESH MATERIALIZED VIEW revenue_by_day
COMMENT 'Trips and revenue per pickup day'
AS SELECT
  to_date(pickup_at) AS day,
  count(*) AS trips,
  round(sum(total_amount), 2) AS revenue
FROM trips_silver
GROUP BY to_date(pickup_at);

CREATE OR REFRESH MATERIALIZED VIEW revenue_by_service_zone (
  CONSTRAINT known_service_zone EXPECT (service_zone <> 'Unknown')
)
COMMENT 'Trips and revenue per service zone of the pickup borough, as the zone is today'
AS SELECT
  coalesce(b.service_zone, 'Unknown') AS service_zone,
  count(*) AS trips,
  round(sum(t.total_amount), 2) AS revenue
FROM trips_silver AS t
LEFT JOIN boroughs AS b
  ON t.pickup_borough = b.borough AND b.__END_AT IS NULL
GROUP BY coalesce(b.service_zone, 'Unknown');
