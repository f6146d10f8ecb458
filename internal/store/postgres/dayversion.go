package postgres

// A day's version (store.Day.Version) must change whenever the day's
// readings change, so that no summary computed before is taken again.
// Writing a new version into the day's row with every insert cost a row
// update per source and group: with readings of 100 000 sources, each
// group of 32 readings updated 32 rows of days. Instead an insert only
// adds the row of a day not listed yet, and the version is completed when
// it is read:
//
//	version = days.version + readings of the day in recent
//
// days.version is epoch << 24 | base. A new epoch (nextval of the sequence
// day_versions, shifted) is given by whatever changes readings other than
// by adding them to recent — Delete, Reduce, a zone change — and to a day
// that is listed anew. The folder, which moves readings from recent into
// chunks without changing them, adds the number it moved to the base, so
// the version stays what it was. Within an epoch the version only grows,
// by one per reading inserted; epochs only grow. So a day's version
// changes exactly when its readings do, and is never reused.
//
// The base stays below 2^23 (the folder starts a new epoch instead); a day
// whose base and readings in recent reach 2^24 - 1 (a backlog of millions
// of readings of one day) reports the saturated version epoch << 24 |
// 2^24 - 1, which PutDaySummary refuses, until the folder has moved them.
//
// Versions stored before (the plain sequence, bumped by every insert) read
// as an epoch and base of their own; their summaries never match a
// completed version and are computed again once.

// listDaysSQL lists the days $2..$3 of source $1 with their versions. The
// readings in recent are counted in one range scan of recent's primary key
// (a zone is less than a day off UTC, so the UTC span a day early and late
// covers every local day asked for).
const listDaysSQL = `
WITH r AS (
	SELECT (t AT TIME ZONE (SELECT timezone FROM sources WHERE id = $1))::date AS day, count(*) AS n
	FROM recent
	WHERE source_id = $1 AND t >= ($2::date - 1)::timestamp AT TIME ZONE 'UTC' AND t < ($3::date + 2)::timestamp AT TIME ZONE 'UTC'
	GROUP BY 1
)
SELECT to_char(d.day, 'YYYY-MM-DD'),
	CASE WHEN (d.version & 16777215) + coalesce(r.n, 0) < 16777215 THEN d.version + coalesce(r.n, 0) ELSE d.version | 16777215 END,
	d.summary, d.summary_version
FROM days d LEFT JOIN r ON r.day = d.day
WHERE d.source_id = $1 AND d.day BETWEEN $2::date AND $3::date ORDER BY d.day`

// putSummarySQL stores summary $4 of day $2 of source $1 if the day's
// version is still $3 (and tells: not saturated).
const putSummarySQL = `
UPDATE days d SET summary = $4, summary_version = $3
WHERE d.source_id = $1 AND d.day = $2::date AND $3::int8 & 16777215 <> 16777215
  AND d.version + (
	SELECT count(*) FROM recent r, (SELECT timezone AS tz FROM sources WHERE id = $1) z
	WHERE r.source_id = $1 AND r.t >= ($2::date)::timestamp AT TIME ZONE z.tz AND r.t < ($2::date + 1)::timestamp AT TIME ZONE z.tz
  ) = $3`

// newDayVersion is the SQL expression of a new epoch's days.version.
const newDayVersion = `nextval('day_versions') << 24`
