# pragma version 0.4.3
"""
@title MockAggregatorV3
@notice Chainlink AggregatorV3-style price feed for tests only: the admin sets every field of the
        latest round, including invalid ones (zero or negative answers, stale or incomplete rounds),
        so that off-chain readers can be tested against them.
@custom:security Test contract; never deploy outside tests or the local demo.
"""


event RoundSet:
    roundId: indexed(uint80)
    answer: int256
    updatedAt: uint256
    answeredInRound: uint80


DECIMALS: constant(uint8) = 8
VERSION: constant(uint256) = 4

admin: public(immutable(address))
description: public(String[64])

_round_id: uint80
_answer: int256
_started_at: uint256
_updated_at: uint256
_answered_in_round: uint80


@deploy
def __init__(_description: String[64]):
    """
    @param _description Feed name, e.g. "BTC / USD".
    """
    admin = msg.sender
    self.description = _description


@external
def set_round(
    _round_id: uint80, _answer: int256, _updated_at: uint256, _answered_in_round: uint80
):
    """
    @notice Set the latest round as returned by `latestRoundData` (startedAt = updatedAt).
    """
    assert msg.sender == admin, "mock: not admin"
    self._round_id = _round_id
    self._answer = _answer
    self._started_at = _updated_at
    self._updated_at = _updated_at
    self._answered_in_round = _answered_in_round
    log RoundSet(
        roundId=_round_id,
        answer=_answer,
        updatedAt=_updated_at,
        answeredInRound=_answered_in_round,
    )


@external
@view
def decimals() -> uint8:
    """
    @notice Decimals of `answer` (8, like Chainlink's USD feeds).
    """
    return DECIMALS


@external
@view
def version() -> uint256:
    """
    @notice Aggregator interface version.
    """
    return VERSION


@external
@view
def latestRoundData() -> (uint80, int256, uint256, uint256, uint80):
    """
    @notice (roundId, answer, startedAt, updatedAt, answeredInRound) of the latest round.
    """
    return (
        self._round_id,
        self._answer,
        self._started_at,
        self._updated_at,
        self._answered_in_round,
    )
