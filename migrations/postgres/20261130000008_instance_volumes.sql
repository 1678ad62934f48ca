-- The EBS volumes attached to each instance (from DescribeInstances' block-device mappings) and
-- when it entered its current state: a stopped instance keeps paying for its volumes, and the
-- savings page says so with the CUR's cost of those volumes.
ALTER TABLE ec2_instances ADD COLUMN volume_ids JSONB NOT NULL DEFAULT '[]';
ALTER TABLE ec2_instances ADD COLUMN state_since TIMESTAMPTZ;
