-- Events held only for a remote room's state or auth chain ("outliers", taken in with a join
-- through another server) are not part of the room's timeline: /messages skips them. Until now
-- every such event sat below stream position 0 and nothing else did.
ALTER TABLE events ADD COLUMN outlier BIGINT NOT NULL DEFAULT 0;
UPDATE events SET outlier = 1 WHERE stream_ordering < 0;
