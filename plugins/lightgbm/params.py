"""LightGBM's parameter names and their aliases, as the installed LightGBM (4.7.0) reports them.

Generated from ``lightgbm.basic._ConfigAliases._get_all_param_aliases()`` (LightGBM's own C API dump),
so `ml validate` checks trainer params without importing LightGBM (1.5 s). A test compares this table
with the installed LightGBM; regenerate after an upgrade with ``python -m ml_framework.plugins.lightgbm.params``.
"""

from __future__ import annotations

__all__ = ["LIGHTGBM_VERSION", "ALIASES", "CANONICAL", "canonical_name"]

LIGHTGBM_VERSION = '4.7.0'

# canonical name -> its aliases
ALIASES: dict[str, tuple[str, ...]] = {
    'alpha': (),
    'auc_mu_weights': (),
    'bagging_by_query': (),
    'bagging_fraction': ('bagging', 'sub_row', 'subsample'),
    'bagging_freq': ('subsample_freq',),
    'bagging_seed': ('bagging_fraction_seed',),
    'bin_construct_sample_cnt': ('subsample_for_bin',),
    'boost_from_average': (),
    'boosting': ('boost', 'boosting_type'),
    'cat_l2': (),
    'cat_smooth': (),
    'categorical_feature': ('cat_column', 'cat_feature', 'categorical_column', 'categorical_features'),
    'cegb_penalty_feature_coupled': (),
    'cegb_penalty_feature_lazy': (),
    'cegb_penalty_split': (),
    'cegb_tradeoff': (),
    'config': ('config_file',),
    'convert_model': ('convert_model_file',),
    'convert_model_language': (),
    'data': ('train', 'train_data', 'data_filename', 'train_data_file'),
    'data_random_seed': ('data_seed',),
    'data_sample_strategy': (),
    'deterministic': (),
    'device_type': ('device',),
    'drop_rate': ('rate_drop',),
    'drop_seed': (),
    'early_stopping_min_delta': (),
    'early_stopping_round': ('early_stopping', 'n_iter_no_change', 'early_stopping_rounds'),
    'enable_bundle': ('bundle', 'is_enable_bundle'),
    'eval_at': ('map_at', 'ndcg_at', 'map_eval_at', 'ndcg_eval_at'),
    'extra_seed': (),
    'extra_trees': ('extra_tree',),
    'fair_c': (),
    'feature_contri': ('fc', 'fp', 'feature_contrib', 'feature_penalty'),
    'feature_fraction': ('sub_feature', 'colsample_bytree'),
    'feature_fraction_bynode': ('colsample_bynode', 'sub_feature_bynode'),
    'feature_fraction_seed': (),
    'feature_pre_filter': (),
    'first_metric_only': (),
    'force_col_wise': (),
    'force_row_wise': (),
    'forcedbins_filename': (),
    'forcedsplits_filename': ('fs', 'forced_splits', 'forced_splits_file', 'forced_splits_filename'),
    'gpu_device_id': (),
    'gpu_device_id_list': (),
    'gpu_platform_id': (),
    'gpu_use_dp': (),
    'group_column': ('group', 'query', 'group_id', 'query_id', 'query_column'),
    'header': ('has_header',),
    'histogram_pool_size': ('hist_pool_size',),
    'ignore_column': ('blacklist', 'ignore_feature'),
    'input_model': ('model_in', 'model_input'),
    'interaction_constraints': (),
    'is_enable_sparse': ('sparse', 'is_sparse', 'enable_sparse'),
    'is_provide_training_metric': ('train_metric', 'training_metric', 'is_training_metric'),
    'is_unbalance': ('unbalance', 'unbalanced_sets'),
    'label_column': ('label',),
    'label_gain': (),
    'lambda_l1': ('reg_alpha', 'l1_regularization'),
    'lambda_l2': ('lambda', 'reg_lambda', 'l2_regularization'),
    'lambdarank_norm': (),
    'lambdarank_position_bias_regularization': (),
    'lambdarank_truncation_level': (),
    'learning_rate': ('eta', 'shrinkage_rate'),
    'linear_lambda': (),
    'linear_tree': ('linear_trees',),
    'local_listen_port': ('port', 'local_port'),
    'machine_list_filename': ('mlist', 'machine_list', 'machine_list_file'),
    'machines': ('nodes', 'workers'),
    'max_bin': ('max_bins',),
    'max_bin_by_feature': (),
    'max_cat_threshold': (),
    'max_cat_to_onehot': (),
    'max_delta_step': ('max_leaf_output', 'max_tree_output'),
    'max_depth': (),
    'max_drop': (),
    'metric': ('metrics', 'metric_types'),
    'metric_freq': ('output_freq',),
    'min_data_in_bin': (),
    'min_data_in_leaf': ('min_data', 'min_samples_leaf', 'min_child_samples', 'min_data_per_leaf'),
    'min_data_per_group': (),
    'min_gain_to_split': ('min_split_gain',),
    'min_sum_hessian_in_leaf': ('min_hessian', 'min_sum_hessian', 'min_child_weight', 'min_sum_hessian_per_leaf'),
    'monotone_constraints': ('mc', 'monotonic_cst', 'monotone_constraint'),
    'monotone_constraints_method': ('mc_method', 'monotone_constraining_method'),
    'monotone_penalty': ('mc_penalty', 'ms_penalty', 'monotone_splits_penalty'),
    'multi_error_top_k': (),
    'neg_bagging_fraction': ('neg_bagging', 'neg_sub_row', 'neg_subsample'),
    'num_class': ('num_classes',),
    'num_gpu': (),
    'num_grad_quant_bins': (),
    'num_iteration_predict': (),
    'num_iterations': ('n_iter', 'nrounds', 'max_iter', 'num_tree', 'num_round', 'num_trees', 'num_rounds', 'n_estimators', 'num_iteration', 'num_boost_round'),
    'num_leaves': ('max_leaf', 'num_leaf', 'max_leaves', 'max_leaf_nodes'),
    'num_machines': ('num_machine',),
    'num_threads': ('n_jobs', 'nthread', 'nthreads', 'num_thread'),
    'objective': ('app', 'loss', 'application', 'objective_type'),
    'objective_seed': (),
    'other_rate': (),
    'output_model': ('model_out', 'model_output'),
    'output_result': ('name_pred', 'pred_name', 'predict_name', 'predict_result', 'prediction_name', 'prediction_result'),
    'parser_config_file': (),
    'path_smooth': (),
    'poisson_max_delta_step': (),
    'pos_bagging_fraction': ('pos_bagging', 'pos_sub_row', 'pos_subsample'),
    'pre_partition': ('is_pre_partition',),
    'precise_float_parser': (),
    'pred_early_stop': (),
    'pred_early_stop_freq': (),
    'pred_early_stop_margin': (),
    'predict_contrib': ('contrib', 'is_predict_contrib'),
    'predict_disable_shape_check': (),
    'predict_leaf_index': ('leaf_index', 'is_predict_leaf_index'),
    'predict_raw_score': ('raw_score', 'predict_rawscore', 'is_predict_raw_score'),
    'quant_train_renew_leaf': (),
    'refit_decay_rate': (),
    'reg_sqrt': (),
    'save_binary': ('is_save_binary', 'is_save_binary_file'),
    'saved_feature_importance_type': (),
    'scale_pos_weight': (),
    'seed': ('random_seed', 'random_state'),
    'sigmoid': (),
    'skip_drop': (),
    'snapshot_freq': ('save_period',),
    'start_iteration_predict': (),
    'stochastic_rounding': (),
    'task': ('task_type',),
    'time_out': (),
    'top_k': ('topk',),
    'top_rate': (),
    'tree_learner': ('tree', 'tree_type', 'tree_learner_type'),
    'tweedie_variance_power': (),
    'two_round': ('two_round_loading', 'use_two_round_loading'),
    'uniform_drop': (),
    'use_missing': (),
    'use_quantized_grad': (),
    'valid': ('test', 'test_data', 'valid_data', 'test_data_file', 'valid_data_file', 'valid_filenames'),
    'verbosity': ('verbose',),
    'weight_column': ('weight',),
    'xgboost_dart_mode': (),
    'zero_as_missing': (),
}

# every accepted name (canonical or alias) -> canonical name
CANONICAL: dict[str, str] = {name: name for name in ALIASES}
CANONICAL.update({alias: name for name, aliases in ALIASES.items() for alias in aliases})


def canonical_name(name: str) -> str | None:
    return CANONICAL.get(name)


def _generate() -> tuple[str, str]:  # pragma: no cover - maintenance helper
    import lightgbm
    import lightgbm.basic

    table = lightgbm.basic._ConfigAliases._get_all_param_aliases()
    rows = "\n".join(f"    {k!r}: {tuple(x for x in table[k] if x != k)!r}," for k in sorted(table))
    return lightgbm.__version__, rows


if __name__ == "__main__":  # pragma: no cover
    import pathlib
    import re

    version, rows = _generate()
    path = pathlib.Path(__file__)
    text = path.read_text()
    text = re.sub(r"LIGHTGBM_VERSION = .*", f"LIGHTGBM_VERSION = {version!r}", text, count=1)
    text = re.sub(r"(ALIASES: dict\[str, tuple\[str, \.\.\.\]\] = \{\n).*?(\n\})", lambda m: m.group(1) + rows + m.group(2),
                  text, count=1, flags=re.S)
    path.write_text(text)
    print(f"wrote {path} for LightGBM {version}")
