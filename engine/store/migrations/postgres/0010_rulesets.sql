-- The ruleset a technical user's or an EDI partner's flows are judged by (issue 17): a name of
-- engine.model.Ruleset, from the directory file's `ruleset`; NULL: the config's [rules] ruleset.
ALTER TABLE technical_users ADD COLUMN ruleset text;
ALTER TABLE partners ADD COLUMN ruleset text;
