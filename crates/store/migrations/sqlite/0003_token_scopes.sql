-- Tokens restricted to projects and/or groups: a JSON list of `project:PATH` and `group:PATH`;
-- an empty list reaches every project.
ALTER TABLE tokens ADD COLUMN restrictions TEXT NOT NULL DEFAULT '[]';
