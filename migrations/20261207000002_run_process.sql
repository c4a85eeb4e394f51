-- The process a run belongs to (its connections' application_name, `b2b-invoice-sync/<uuid>`):
-- recovery leaves an in-flight request of a run whose process is still connected, and younger
-- than twice the request timeout, to that process, which may still be sending it.
ALTER TABLE sync_runs ADD COLUMN process TEXT NULL;
