"Real-data tests of dcresearch.tabular on the airline tweets (14,640 rows, 15 columns, many missing fields)."
import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import make_pipeline

from dcresearch.tabular import (FeatureSelector, MinMaxNormalizer, MissingValueHandler, OutlierHandler, ZScoreNormalizer,
                                clean_table, tabular_report)


@pytest.fixture(scope='module')
def tweets(shared) -> pd.DataFrame:
    df = pd.read_csv(shared/'tweets'/'airline_tweets.csv')
    assert df.shape == (14_640, 15)
    return df


@pytest.fixture(scope='module')
def features(tweets):
    "Numeric features for predicting `airline_sentiment`: one-hot airline and complaint, confidences, retweets."
    X = pd.get_dummies(tweets[['airline', 'negativereason']], dtype=float)
    return X.assign(airline_sentiment_confidence=tweets.airline_sentiment_confidence,
                    negativereason_confidence=tweets.negativereason_confidence, retweet_count=tweets.retweet_count), tweets.airline_sentiment


# --- missing values ---------------------------------------------------------------------------------

def test_missing_drop_counts(tweets):
    h = MissingValueHandler('drop', columns=['negativereason_confidence']).fit(tweets)
    kept = h.transform(tweets)
    assert len(h.dropped_index_) == 4118 and len(kept) == 10_522            # the 4,118 empty cells of that column
    assert kept.index.intersection(h.dropped_index_).empty and kept['negativereason_confidence'].notna().all()
    reasons = h.drop_reasons(tweets)
    assert (reasons['reason'] == 'tabular:missing').all() and (reasons['detail'] == 'column=negativereason_confidence').all()
    # both columns: a row goes if either is missing; the detail names the missing ones
    both = MissingValueHandler('drop', columns=['negativereason', 'negativereason_confidence']).fit(tweets)
    assert len(both.dropped_index_) == int(tweets[['negativereason', 'negativereason_confidence']].isna().any(axis=1).sum()) == 5462
    assert set(both.drop_reasons(tweets)['detail']) == {'column=negativereason,negativereason_confidence', 'column=negativereason'}


def test_missing_fill_strategies(tweets):
    col = 'negativereason_confidence'
    med = MissingValueHandler('median', columns=[col]).fit(tweets)
    assert med.statistics_[col] == pytest.approx(tweets[col].median()) == pytest.approx(0.6706)
    out = med.transform(tweets)
    assert out[col].notna().all() and len(out) == 14_640
    assert (out[col] == 0.6706).sum() == tweets[col].isna().sum() + (tweets[col] == 0.6706).sum()
    assert out.drop(columns=col).equals(tweets.drop(columns=col))      # nothing else touched
    mean = MissingValueHandler('mean', columns=[col]).fit_transform(tweets)
    assert mean[col].mean() == pytest.approx(tweets[col].mean())
    mf = MissingValueHandler('most_frequent', columns=['negativereason']).fit_transform(tweets)
    assert mf['negativereason'].value_counts()['Customer Service Issue'] == 2910 + 5462
    const = MissingValueHandler('constant', columns=['user_timezone'], fill_value='unknown').fit_transform(tweets)
    assert (const['user_timezone'] == 'unknown').sum() == 4820
    # interpolation follows row order: sort by time first
    ordered = tweets.sort_values('tweet_created')
    interp = MissingValueHandler('interpolate', columns=[col]).fit_transform(ordered)
    assert interp[col].notna().all() and interp[col].between(0, 1).all()
    assert interp.index.equals(ordered.index)


def test_missing_placeholders(tweets):
    # `[0.0, 0.0]` is how the export wrote "no location": count it as missing
    h = MissingValueHandler('drop', columns=['tweet_coord'], missing_values=['[0.0, 0.0]']).fit(tweets)
    assert len(h.dropped_index_) == 13_621 + int((tweets.tweet_coord == '[0.0, 0.0]').sum()) == 13_785


# --- outliers ----------------------------------------------------------------------------------------

def test_outliers_on_retweet_count(tweets):
    rc = tweets.retweet_count
    iqr = OutlierHandler('iqr', action='flag', columns=['retweet_count']).fit(tweets)
    # 95% of tweets have 0 retweets: Q1 = Q3 = 0, so the fences are [0, 0] and every retweeted tweet is an outlier
    assert (iqr.lower_['retweet_count'], iqr.upper_['retweet_count']) == (0, 0)
    assert iqr.transform(tweets)['is_outlier'].sum() == (rc != 0).sum() == 767
    z = OutlierHandler('zscore', action='flag', columns=['retweet_count']).fit(tweets)
    assert z.transform(tweets)['is_outlier'].sum() == (rc > rc.mean() + 3 * rc.std(ddof=0)).sum() == 61
    clipped = OutlierHandler('zscore', action='clip', columns=['retweet_count']).fit_transform(tweets)
    assert clipped.retweet_count.max() == pytest.approx(rc.mean() + 3 * rc.std(ddof=0)) and len(clipped) == 14_640
    forest = OutlierHandler('isolation_forest', action='drop', columns=['retweet_count', 'airline_sentiment_confidence'],
                            contamination=0.01).fit(tweets)
    assert 0.005 * 14_640 <= len(forest.dropped_index_) <= 0.015 * 14_640
    assert tweets.loc[forest.dropped_index_, 'retweet_count'].mean() > 5 * rc.mean()   # it picks the heavily retweeted
    d = OutlierHandler('zscore', action='drop', columns=['retweet_count']).fit(tweets).drop_reasons(tweets)
    assert len(d) == 61 and d['reason'].eq('tabular:outlier_zscore').all()
    assert d['detail'].iloc[0].startswith('column=retweet_count value=')


# --- normalisation and feature selection --------------------------------------------------------------

def test_normalizers_keep_frame_and_text_columns(tweets):
    cols = ['airline_sentiment_confidence', 'negativereason_confidence', 'retweet_count']
    mm = MinMaxNormalizer(columns=cols).fit_transform(tweets)
    assert list(mm.columns) == list(tweets.columns) and mm.index.equals(tweets.index)
    assert np.allclose(mm[cols].min(), 0) and np.allclose(mm[cols].max(), 1)
    assert mm['negativereason_confidence'].isna().sum() == 4118            # gaps stay gaps
    assert mm['text'].equals(tweets['text'])
    z = ZScoreNormalizer(columns=cols).fit_transform(tweets)
    assert np.allclose(z[cols].mean(), 0, atol=1e-9) and np.allclose(z[cols].std(ddof=0), 1)


def test_feature_selection_for_sentiment(features):
    X, y = features
    prep = make_pipeline(MissingValueHandler('constant', fill_value=0), MinMaxNormalizer()).set_output(transform='pandas')
    Xp = prep.fit_transform(X)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')     # chi2/f_classif warn about all-zero one-hot columns in some folds
        for func in ('f_classif', 'chi2', 'mutual_info'):
            sel = FeatureSelector(k=5, score_func=func).fit(Xp, y)
            # how confident the annotator was about the complaint is the strongest signal; retweets carry none
            assert sel.scores_.idxmax() == 'negativereason_confidence', func
            assert 'retweet_count' not in sel.selected_ and len(sel.selected_) == 5
        pct = FeatureSelector('percentile', percentile=20).fit(Xp, y)
        assert len(pct.selected_) == round(0.2 * X.shape[1]) and pct.selected_[0] in X.columns
        model = make_pipeline(MissingValueHandler('constant', fill_value=0), MinMaxNormalizer(), FeatureSelector(k=5),
                              LogisticRegression(max_iter=500))
        acc = cross_val_score(model, X, y, cv=3).mean()
    assert acc > 0.8 > (y == 'negative').mean() + 0.15     # well above always answering "negative" (0.63)


# --- ledger-style cleaning ----------------------------------------------------------------------------

def test_clean_table_ledger_on_tweets(tweets):
    steps = [MissingValueHandler('drop', columns=['negativereason_confidence']),
             OutlierHandler('zscore', action='drop', columns=['retweet_count']),
             MinMaxNormalizer(columns=['airline_sentiment_confidence'])]
    res = clean_table(tweets, steps, target='airline_sentiment')
    assert len(res.kept) + len(res.dropped) == 14_640
    led = res.ledger
    assert (led.n_in == led.n_kept + led.n_dropped).all() and (led.n_in.iloc[1:].to_numpy() == led.n_kept.iloc[:-1].to_numpy()).all()
    assert led.n_dropped.tolist() == [4118, 34, 0]
    assert res.dropped['reason'].value_counts().to_dict() == {'tabular:missing': 4118, 'tabular:outlier_zscore': 34}
    # dropped rows are the original rows, unchanged; kept rows keep their original index
    orig = tweets.loc[res.dropped.index]
    assert orig['text'].equals(res.dropped['text']) and orig['airline_sentiment_confidence'].equals(res.dropped['airline_sentiment_confidence'])
    assert res.kept.index.isin(tweets.index).all() and res.kept.index.intersection(res.dropped.index).empty
    assert res.kept['airline_sentiment'].equals(tweets.loc[res.kept.index, 'airline_sentiment'])
    assert steps[0].__dict__.get('columns_') is None      # the caller's transformers were cloned, not fitted in place
    rep = tabular_report(tweets, res.kept).set_index('column')
    assert rep.attrs['rows_dropped'] == 4152
    assert rep.loc['negativereason_confidence', ['missing_before', 'missing_after']].tolist() == [4118, 0]
    assert rep.loc['airline_sentiment_confidence', 'changed'] == (tweets.loc[res.kept.index, 'airline_sentiment_confidence'] != res.kept['airline_sentiment_confidence']).sum() > 0
    assert rep.loc['text', 'changed'] == 0 and rep.loc['retweet_count', 'max_after'] <= 2


def test_sklearn_compatibility(tweets):
    for est in [MissingValueHandler('mean', columns=['retweet_count']), OutlierHandler('zscore'), MinMaxNormalizer(),
                ZScoreNormalizer(), FeatureSelector(k=2)]:
        c = clone(est)
        assert c.get_params() == est.get_params() and repr(c) == repr(est)
    num = tweets[['airline_sentiment_confidence', 'retweet_count']]
    o = OutlierHandler('iqr', action='flag').set_output(transform='pandas').fit(num)
    assert list(o.transform(num).columns) == ['airline_sentiment_confidence', 'retweet_count', 'is_outlier']
    # arrays work too: columns are named x0, x1, ...
    arr = MinMaxNormalizer().fit_transform(num.to_numpy())
    assert list(arr.columns) == ['x0', 'x1'] and arr.to_numpy().max() == 1
    with pytest.raises(KeyError, match='lacks'):
        MinMaxNormalizer().fit(num).transform(num[['retweet_count']])
