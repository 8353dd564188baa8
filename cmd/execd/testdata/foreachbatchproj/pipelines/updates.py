"""The streaming node's transform, tauro's form: fn(input_df, node_config)."""


def keyed(input_df, node_config):
    return input_df.where("key IS NOT NULL")
